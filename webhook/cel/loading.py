"""From the Kubernetes objects among the policy files to compiled CEL policy sets.

Policies and bindings are validated and compiled (:mod:`webhook.cel.documents` for
ValidatingAdmissionPolicy, :mod:`webhook.cel.mutating_documents` for MutatingAdmissionPolicy);
every other object is a param object, shared by both sets. Problems come back as
``file:line: <the API server's error>`` lines, all of them at once, like every other policy file
error; nothing that fails here reaches the request path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from webhook.cel import documents, mutating, params, runtime, validating
from webhook.cel import mutating_documents as mdocs
from webhook.policy import files

_PLURALS = {
    documents.POLICY: "validatingadmissionpolicies", documents.BINDING: "validatingadmissionpolicybindings",
    mdocs.POLICY: "mutatingadmissionpolicies", mdocs.BINDING: "mutatingadmissionpolicybindings",
}
_VERSIONS = {
    documents.POLICY: documents.VALIDATING_VERSIONS, documents.BINDING: documents.VALIDATING_VERSIONS,
    mdocs.POLICY: mdocs.VERSIONS, mdocs.BINDING: mdocs.VERSIONS,
}
_LOADERS: dict[str, documents.Loader] = {**documents.LOADERS, **mdocs.LOADERS}


@dataclasses.dataclass(frozen=True)
class Loaded:
    """The CEL policies of a policy set: validating and mutating, with the same param objects."""

    validating: validating.PolicySet
    mutating: mutating.PolicySet

    @property
    def empty(self) -> bool:
        return self.validating.empty and self.mutating.empty


def load(objects: Iterable[files.Document], problems: list[str], *, kubernetes_minor: int | None = None) -> Loaded:
    """Compile the policies and bindings in ``objects``; append what is refused to ``problems``.

    Expressions are checked as an API server of version 1.``kubernetes_minor`` checks a policy
    being created (:func:`webhook.cel.runtime.libraries_of`); ``None``: against the newest base
    environment there is."""
    libraries = runtime.NEWEST if kubernetes_minor is None else runtime.libraries_of(kubernetes_minor)
    found: dict[str, list[Any]] = {kind: [] for kind in _LOADERS}
    param_objects: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    for obj in objects:
        body = obj.body
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind not in _LOADERS or not str(api_version).startswith(documents.GROUP + "/"):
            param_objects.append(body)
            continue
        kind = str(kind)
        if api_version not in _VERSIONS[kind]:
            problems.append(f"{obj.where}: {kind}: apiVersion {api_version} is not served; use "
                            f"{' or '.join(_VERSIONS[kind])}")
            continue
        try:
            loaded = _LOADERS[kind](body, source=obj.where, libraries=libraries)
        except documents.Refused as exc:
            problems.append(f"{obj.where}: {exc}")
            continue
        key = (kind, loaded.name)
        if key in seen:
            problems.append(f'{obj.where}: {_PLURALS[kind]}.{documents.GROUP} "{loaded.name}" already exists '
                            f"(first defined at {seen[key]})")
            continue
        seen[key] = obj.where
        found[kind].append(loaded)
    store = params.Store.of(param_objects)
    return Loaded(
        validating.PolicySet(tuple(found[documents.POLICY]), tuple(found[documents.BINDING]), store),
        mutating.PolicySet(tuple(found[mdocs.POLICY]), tuple(found[mdocs.BINDING]), store),
    )
