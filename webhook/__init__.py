"""A Kubernetes admission webhook server.

Layers, top to bottom (lower never imports higher; see STYLE.md and the import-linter contract):
``cli`` -> ``server``, ``registration``, ``emulator`` -> ``engine``, ``metrics``, ``certs`` ->
``mutators``, ``validators`` -> ``policy``, ``patch``, ``review`` -> ``errors``, ``config``, ``logs``.
"""

__version__ = "0.1.0"
