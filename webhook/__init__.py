"""A Kubernetes admission webhook server.

Layers, top to bottom (lower never imports higher; see STYLE.md and the import-linter contract):
``cli``/``commands`` -> ``runner`` -> ``server``, ``recorder``, ``registration``, ``emulator``,
``offline``, ``golden`` -> ``engine``, ``metrics``, ``certs``, ``tls``, ``cluster`` ->
``mutators``, ``validators`` -> ``policy``, ``patch``, ``review``, ``quantity`` -> ``errors``,
``config``, ``logs``.
"""

__version__ = "0.1.0"
