"""Downward API: expose the pod's identity and resources to its containers as env vars (and a volume).

Runs after sidecar injection and defaults (group order 30), so injected sidecars get the same
variables, and ``CPU_LIMIT`` etc. refer to limits the defaults may just have set.

Env vars follow the Kubernetes Downward API: ``fieldRef`` for pod fields (only the paths the API
server accepts in env: ``metadata.name``, ``status.podIP``, ...), ``resourceFieldRef`` with the
container's own name for requests and limits. A variable the container already defines is never
replaced, and ``envFrom`` is never touched — but note that ``env`` wins over ``envFrom`` in
Kubernetes, so a ConfigMap key named like one of ours is shadowed; ``skipContainersWithEnvFrom``
avoids that for teams that rely on it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic

from webhook import errors
from webhook.policy import model, registry, settings, workloads

GROUP = "downward-api"

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

    def as_source(self, container: str) -> dict[str, Any]:
        ref: dict[str, Any] = {"containerName": container, "resource": self.resource}
        if self.divisor is not None:
            ref["divisor"] = self.divisor
        return {"resourceFieldRef": ref}


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


registry.group(
    GROUP,
    key="downwardAPI",
    chain="mutating",
    settings_model=DownwardAPISettings,
    order=30,
    description="Add Downward API env vars (pod identity, resources) and optionally a podinfo volume.",
)


def _targets(spec: dict[str, Any], params: DownwardAPISettings) -> list[dict[str, Any]]:
    found = []
    for field, _, container in workloads.containers(spec):
        if field == "ephemeralContainers" or not isinstance(container.get("name"), str):
            continue
        if field == "initContainers":
            native = container.get("restartPolicy") == "Always"
            if not (params.nativeSidecars if native else params.initContainers):
                continue
        elif not params.containers:
            continue
        if params.skipContainersWithEnvFrom and container.get("envFrom"):
            continue
        found.append(container)
    return found


def _wanted_env(container: dict[str, Any], params: DownwardAPISettings) -> list[dict[str, Any]]:
    env = [
        {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
        for name, path in params.fieldEnv.items()
    ]
    env += [
        {"name": name, "valueFrom": ref.as_source(container["name"])}
        for name, ref in params.resourceEnv.items()
    ]
    return env


@registry.mutation("downward-api.env", group=GROUP, pod_spec=True, order=10,
                   writes=("spec.containers[*]", "spec.initContainers[*]"))
def inject_env(target: model.PodTarget, ctx: model.ReviewContext, params: DownwardAPISettings) -> None:
    """Add the configured Downward API variables each container does not define itself."""
    for container in _targets(target.spec, params):
        env = container.get("env")
        if env is not None and not isinstance(env, list):
            continue
        current = env or []
        names = [e.get("name") if isinstance(e, dict) else None for e in current]
        missing = [e for e in _wanted_env(container, params) if e["name"] not in names]
        if not missing:
            continue
        unique = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        if params.position == "first" and unique:
            container["env"] = [*missing, *current]
        else:
            container["env"] = [*current, *missing]


@registry.mutation("downward-api.volume", group=GROUP, pod_spec=True, order=20,
                   writes=("spec", "spec.containers[*]", "spec.initContainers[*]"))
def inject_volume(target: model.PodTarget, ctx: model.ReviewContext, params: DownwardAPISettings) -> None:
    """Add a ``downwardAPI`` volume with labels/annotations and mount it read-only into each container.

    An existing volume of that name is accepted as ours only when it is a ``downwardAPI`` volume
    (the API server adds ``defaultMode`` to it, so an exact comparison would fail on re-submission);
    any other volume of that name, or another volume mounted at the path, is refused.
    """
    wanted = params.volume
    if wanted is None:
        return
    spec = target.spec
    volumes = spec.get("volumes")
    if volumes is not None and not isinstance(volumes, list):
        return
    existing = next((v for v in volumes or [] if isinstance(v, dict) and v.get("name") == wanted.name), None)
    if existing is not None and "downwardAPI" not in existing:
        raise errors.MutationRejected(
            f'the pod already has a volume named "{wanted.name}" that is not a downwardAPI volume; '
            "rename it, or change downwardAPI.volume.name in the policy"
        )
    mount = {"name": wanted.name, "mountPath": wanted.mountPath, "readOnly": True}
    to_mount: list[dict[str, Any]] = []
    for container in _targets(spec, params):
        mounts = container.get("volumeMounts")
        if mounts is not None and not isinstance(mounts, list):
            continue
        mounts = [m for m in mounts or [] if isinstance(m, dict)]
        if any(m.get("name") == wanted.name for m in mounts):
            continue
        taken = next((m for m in mounts if m.get("mountPath") == wanted.mountPath), None)
        if taken is not None:
            raise errors.MutationRejected(
                f'container "{container["name"]}" already mounts volume "{taken.get("name")}" at '
                f"{wanted.mountPath}; move it, or change downwardAPI.volume.mountPath in the policy"
            )
        to_mount.append(container)
    if existing is None and to_mount:
        spec["volumes"] = [*(volumes or []), wanted.volume()]
    for container in to_mount:
        container["volumeMounts"] = [*(container.get("volumeMounts") or []), dict(mount)]
