"""Policy plumbing: the registry of checks and mutations, policy-file models and loading, scopes.

May import: ``webhook.errors``, pydantic, PyYAML. Must not import aiohttp, kubernetes, or the
server: policy logic is pure functions over dicts, testable without a server.
"""
