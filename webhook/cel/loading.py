"""From the Kubernetes objects among the policy files to a compiled CEL policy set.

Policies and bindings are validated and compiled (:mod:`webhook.cel.documents`); every other object
is a param object. Problems come back as ``file:line: <the API server's error>`` lines, all of them
at once, like every other policy file error; nothing that fails here reaches the request path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webhook.cel import documents, params, validating
from webhook.policy import files

_PLURALS = {documents.POLICY: "validatingadmissionpolicies", documents.BINDING: "validatingadmissionpolicybindings"}


def load(objects: Iterable[files.Document], problems: list[str]) -> validating.PolicySet:
    """Compile the policies and bindings in ``objects``; append what is refused to ``problems``."""
    policies: list[documents.ValidatingPolicy] = []
    bindings: list[documents.Binding] = []
    param_objects: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    for obj in objects:
        body = obj.body
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind in documents.MUTATING_KINDS:
            problems.append(f"{obj.where}: {kind}: MutatingAdmissionPolicy is not served by this version of the "
                            "webhook yet; remove the document or run it in the cluster (kube-apiserver 1.32+ with "
                            "the MutatingAdmissionPolicy feature)")
            continue
        if kind not in documents.KINDS or not str(api_version).startswith(documents.GROUP + "/"):
            param_objects.append(body)
            continue
        if api_version not in documents.VALIDATING_VERSIONS:
            problems.append(f"{obj.where}: {kind}: apiVersion {api_version} is not served; use "
                            f"{' or '.join(documents.VALIDATING_VERSIONS)}")
            continue
        try:
            loaded = documents.LOADERS[str(kind)](body, source=obj.where)
        except documents.Refused as exc:
            problems.append(f"{obj.where}: {exc}")
            continue
        key = (str(kind), loaded.name)
        if key in seen:
            problems.append(f'{obj.where}: {_PLURALS[str(kind)]}.{documents.GROUP} "{loaded.name}" already exists '
                            f"(first defined at {seen[key]})")
            continue
        seen[key] = obj.where
        if isinstance(loaded, documents.ValidatingPolicy):
            policies.append(loaded)
        else:
            bindings.append(loaded)
    return validating.PolicySet(tuple(policies), tuple(bindings), params.Store.of(param_objects))
