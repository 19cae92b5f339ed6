"""The downward-api group's settings: the pydantic models its policy files are validated with.

Kept apart from the mutations in :mod:`webhook.mutators.downward_api`, which mypyc compiles (see
``setup.py``): pydantic reads validators and field types from Python functions and module
globals, which a compiled module does not offer as it expects.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic

from webhook.policy import settings

# The fieldRef paths the API server accepts for env vars (validation.validEnvDownwardAPIFieldPathExpressions).
_FIELD_PATHS = frozenset({
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
})
_SUBSCRIPTED = re.compile(r"^metadata\.(labels|annotations)\['[^']+'\]$")
_RESOURCES = re.compile(r"^(requests|limits)\.(cpu|memory|ephemeral-storage|hugepages-[0-9A-Za-z]+)$")
# Divisors the API server accepts (validation.validateContainerResourceDivisor).
_CPU_DIVISORS = frozenset({"1m", "1"})
_MEMORY_DIVISORS = frozenset(
    {"1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"}
)
# A valid env var name (validation.IsEnvVarName: printable ASCII without '='; we keep to the portable set).
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

DEFAULT_FIELDS: dict[str, str] = {
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "POD_UID": "metadata.uid",
    "POD_IP": "status.podIP",
    "HOST_IP": "status.hostIP",
    "NODE_NAME": "spec.nodeName",
    "SERVICE_ACCOUNT": "spec.serviceAccountName",
}


class ResourceRef(settings.StrictModel):
    resource: str
    """``requests.cpu``, ``limits.memory``, ``requests.ephemeral-storage``, ``limits.hugepages-2Mi``..."""
    divisor: str | None = None
    """Unit of the value (``1m`` gives millicores; without it CPU is rounded up to whole cores)."""

    @pydantic.model_validator(mode="after")
    def _known(self) -> ResourceRef:
        match = _RESOURCES.match(self.resource)
        if match is None:
            raise ValueError(f"resource {self.resource!r} is not requests.<name> or limits.<name>")
        if self.divisor is not None:
            allowed = _CPU_DIVISORS if match.group(2) == "cpu" else _MEMORY_DIVISORS
            if self.divisor not in allowed:
                raise ValueError(
                    f"divisor {self.divisor!r} for {self.resource}: use one of {sorted(allowed)}"
                )
        return self


DEFAULT_RESOURCES: dict[str, ResourceRef] = {
    "CPU_REQUEST": ResourceRef(resource="requests.cpu"),
    "CPU_LIMIT": ResourceRef(resource="limits.cpu"),
    "MEMORY_REQUEST": ResourceRef(resource="requests.memory"),
    "MEMORY_LIMIT": ResourceRef(resource="limits.memory"),
}


class VolumeSettings(settings.StrictModel):
    name: str = "podinfo"
    mountPath: str = "/etc/podinfo"
    labels: bool = True
    """Write ``metadata.labels`` to the file ``labels``."""
    annotations: bool = True
    """Write ``metadata.annotations`` to the file ``annotations``."""

    def volume(self) -> dict[str, Any]:
        items = [
            {"path": field, "fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.{field}"}}
            for field, wanted in (("labels", self.labels), ("annotations", self.annotations))
            if wanted
        ]
        return {"name": self.name, "downwardAPI": {"items": items}}


class DownwardAPISettings(settings.MutatingGroupSettings):
    optOutAnnotation: str | None = "downward-api.admission.dev/inject"
    fieldEnv: dict[str, str] = DEFAULT_FIELDS
    """Env var name -> ``fieldRef.fieldPath``."""
    resourceEnv: dict[str, ResourceRef] = DEFAULT_RESOURCES
    """Env var name -> ``resourceFieldRef`` (the container's own name is filled in)."""
    containers: bool = True
    initContainers: bool = True
    """Plain init containers (run-to-completion)."""
    nativeSidecars: bool = True
    """Init containers with ``restartPolicy: Always`` (injected native sidecars among them)."""
    skipContainersWithEnvFrom: bool = False
    position: Literal["first", "last"] = "first"
    """``first`` puts the variables before the container's own, so the user's values may refer to
    them as ``$(POD_NAME)`` (Kubernetes expands references to *earlier* variables only). When the
    container's env has duplicate names the variables are appended instead, so the patch stays
    pure ``add`` operations."""
    volume: VolumeSettings | None = None
    """A ``downwardAPI`` volume with the pod's labels and annotations (used by ``downward-api.volume``)."""

    @pydantic.model_validator(mode="after")
    def _valid(self) -> DownwardAPISettings:
        for name, path in self.fieldEnv.items():
            if path not in _FIELD_PATHS and not _SUBSCRIPTED.match(path):
                raise ValueError(f"fieldEnv {name}: {path!r} is not a field the Downward API exposes as env")
        for name in (*self.fieldEnv, *self.resourceEnv):
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid env var name")
        both = set(self.fieldEnv) & set(self.resourceEnv)
        if both:
            raise ValueError(f"env var(s) {', '.join(sorted(both))} defined in both fieldEnv and resourceEnv")
        return self


