"""Param objects for ``paramKind``/``paramRef`` (``generic.CollectParams``), from policy files.

Any document in a ``--policies`` file or directory that is neither a PolicyConfig nor a policy or
binding is a param object (a ConfigMap, a custom resource, ...). Whether its kind is namespaced is
what the API server's REST mapping would say; offline we know it for the built-in kinds people use
as params and otherwise infer it from the objects themselves (one with ``metadata.namespace`` makes
the kind namespaced).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from webhook.cel import documents
from webhook.policy import model, scope

NAMESPACED_KINDS = frozenset({("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount")})
CLUSTER_KINDS = frozenset({("v1", "Namespace"), ("v1", "Node")})


class ConfigurationError(Exception):
    """A binding cannot be evaluated; the message is the API server's (``failed to configure
    binding: ...`` is added by the caller)."""


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


NO_PARAMS: Sequence[Any] = (None,)
"""One evaluation without params (one object, so callers can tell it by identity)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Store:
    """Param objects by ``(apiVersion, kind)``, in the order they were read."""

    objects: Mapping[tuple[str, str], tuple[dict[str, Any], ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, objects: Iterable[dict[str, Any]]) -> Store:
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for obj in objects:
            key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
            found.setdefault(key, []).append(obj)
        return cls({key: tuple(items) for key, items in found.items()})

    def namespaced(self, kind: documents.ParamKind, live: model.ParamSource | None = None) -> bool:
        key = (kind.api_version, kind.kind)
        if key in NAMESPACED_KINDS:
            return True
        if key in CLUSTER_KINDS:
            return False
        known = (*self.objects.get(key, ()), *(live.objects(*key) if live is not None else ()))
        return any(_metadata(obj).get("namespace") for obj in known)

    def for_binding(
        self, kind: documents.ParamKind | None, ref: documents.ParamRef | None, ctx: model.ReviewContext
    ) -> Sequence[Any]:
        """What a binding evaluates its policy with: :data:`NO_PARAMS` (one evaluation, no params)
        unless both the policy's ``paramKind`` and the binding's ``paramRef`` are set, else
        :meth:`collect`."""
        if kind is None or ref is None:
            return NO_PARAMS
        return self.collect(kind, ref, request_namespace=ctx.namespace, live=ctx.params)

    def collect(
        self, kind: documents.ParamKind, ref: documents.ParamRef, *, request_namespace: str,
        live: model.ParamSource | None = None,
    ) -> list[dict[str, Any]]:
        """The params a binding evaluates its policy with (one evaluation each), or raises
        :class:`ConfigurationError`. An empty list means "none found, parameterNotFoundAction Allow"."""
        namespace = ""
        if self.namespaced(kind, live):
            namespace = ref.namespace or request_namespace
            if not namespace:
                raise ConfigurationError(
                    "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                )
        elif ref.namespace:
            raise ConfigurationError("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
        # The cluster's objects first; a file's object of the same namespace and name replaces it
        # (the files are what the operator reviewed with this policy set).
        by_identity: dict[tuple[str, str], dict[str, Any]] = {}
        sources = (live.objects(kind.api_version, kind.kind) if live is not None else (),
                   self.objects.get((kind.api_version, kind.kind), ()))
        for source in sources:
            for obj in source:
                by_identity[(str(_metadata(obj).get("namespace") or ""), str(_metadata(obj).get("name")))] = obj
        candidates = [obj for (obj_namespace, _), obj in by_identity.items() if obj_namespace == namespace]
        if ref.name is not None:
            found = [obj for obj in candidates if _metadata(obj).get("name") == ref.name]
        else:
            selector = ref.selector or documents.Selector()
            found = [
                obj for obj in candidates
                if scope.requirements_hold(selector.match_labels, selector.match_expressions,
                                           _labels(obj))
            ]
        if not found and ref.not_found_action == "Deny":
            raise ConfigurationError("no params found for policy binding with `Deny` parameterNotFoundAction")
        return found


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = _metadata(obj).get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
