"""The full policy catalog, and the one function that loads a policy set against it.

Importing this module imports every built-in policy module, so its groups and checks are
registered. The server, the offline ``review`` CLI and ``register`` call :func:`load`; tests that
build their own catalogs call :class:`webhook.engine.PolicySet` with them instead. Order of the
imports does not matter: groups carry their own order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from webhook import engine
from webhook.mutators import defaults, downward_api, sidecars  # noqa: F401
from webhook.policy import files, registry
from webhook.validators import pod_security, rbac, security_context, storage  # noqa: F401

REGISTRY: registry.Registry = registry.REGISTRY


def load(
    paths: Sequence[Path], *, overrides: Sequence[str] = (), kubernetes_minor: int | None = None
) -> engine.PolicySet:
    """Read, validate and compile the policy files at ``paths`` with ``dotted.path=value``
    ``overrides`` against the full catalog (raises PolicyConfigError naming file and line);
    admission policies' expressions are checked as an API server of version
    1.``kubernetes_minor`` checks them (``None``: the newest libraries)."""
    config = files.load(list(paths), overrides=list(overrides), catalog=REGISTRY)
    return engine.PolicySet(config, catalog=REGISTRY, kubernetes_minor=kubernetes_minor)
