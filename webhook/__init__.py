"""A Kubernetes admission webhook server.

Layers, top to bottom (lower never imports higher; ``|`` separates modules on one floor, which do
not import each other; enforced by the import-linter contracts in pyproject.toml):

``__main__`` -> ``cli`` -> ``commands`` -> ``runner`` -> ``server`` (the one app factory) ->
``deadlines`` | ``faults`` | ``recorder`` | ``golden`` | ``audit`` | ``suites`` ->
``appstate`` | ``offline`` | ``catalog`` | ``registration`` -> ``explain`` | ``apiserver_prep`` ->
``engine`` | ``mutators`` | ``validators`` | ``emulator`` | ``tls`` | ``cluster`` ->
``review`` | ``quantity`` | ``certs`` | ``metrics`` | ``recording`` | ``cel`` | ``shapes`` | ``plan`` ->
``envelope`` -> ``policy`` | ``patch`` | ``config`` -> ``jsonpointer`` ->
``errors`` | ``logs`` | ``gotext`` | ``compiled``.

Only ``cluster``, ``registration`` and ``audit.live`` import the kubernetes client; policy logic
never imports aiohttp; the policy group modules under ``validators`` and ``mutators`` are
independent.
"""

__version__ = "0.1.0"

from webhook import compiled as _compiled

_compiled.guard()  # before any compiled module is imported
