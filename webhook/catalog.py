"""Imports every built-in policy module so its groups and checks are registered.

Import this (not the modules one by one) wherever the full catalogue is needed: the server, the
offline ``review`` CLI, ``register``. Order here does not matter: groups carry their own order.
"""

from webhook.mutators import defaults, downward_api, sidecars  # noqa: F401
from webhook.policy import registry
from webhook.validators import pod_security, rbac, security_context, storage  # noqa: F401

REGISTRY = registry.REGISTRY
