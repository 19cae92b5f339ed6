"""CEL admission policies: ValidatingAdmissionPolicy and MutatingAdmissionPolicy run unchanged.

``runtime`` compiles and evaluates expressions (cel-cpp through cel-expr-python) with the
Kubernetes ``library``; ``documents`` loads and validates the policy objects as the API server
validates them on create; ``matching`` decides which requests a binding sees; ``validating`` and
``mutating`` evaluate them with the API server's semantics and texts. Imports neither aiohttp nor
kubernetes: the server, the offline ``review`` and the tests share it.
"""
