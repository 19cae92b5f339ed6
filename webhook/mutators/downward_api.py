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

from typing import Any, NamedTuple

from webhook import errors
from webhook.mutators.downward_api_settings import DownwardAPISettings
from webhook.policy import model, registry, workloads

GROUP = "downward-api"


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


class _Variable(NamedTuple):
    """One configured variable as an entry to copy: the entry, its ``valueFrom`` and the reference
    inside it, each copied on its own (the reference of a resource gets the container's name)."""

    name: str
    entry: dict[str, Any]
    source: dict[str, Any]
    ref: dict[str, Any]
    ref_key: str
    per_container: bool


def _variables(params: DownwardAPISettings) -> tuple[_Variable, ...]:
    """The configured variables of ``params`` (``fieldEnv``, then ``resourceEnv``), made once per
    settings object. Copying a made dict costs a third of building one compiled (``CPyDict_Build``
    inserts key by key into a dict it grows; ``dict.copy`` clones the table), and a container gets
    up to 33 of them (11 variables, 3 levels each)."""
    known = _VARIABLES.get(id(params))
    if known is not None and known[0] is params:
        return known[1]
    made: list[_Variable] = []
    for name, path in params.fieldEnv.items():
        ref: dict[str, Any] = {"apiVersion": "v1", "fieldPath": path}
        source: dict[str, Any] = {"fieldRef": ref}
        made.append(_Variable(name, {"name": name, "valueFrom": source}, source, ref, "fieldRef", False))
    for name, resource in params.resourceEnv.items():
        ref = {"containerName": "", "resource": resource.resource}
        if resource.divisor is not None:
            ref["divisor"] = resource.divisor
        source = {"resourceFieldRef": ref}
        made.append(_Variable(name, {"name": name, "valueFrom": source}, source, ref, "resourceFieldRef", True))
    if len(_VARIABLES) >= 64:  # settings objects come from policy loads: a few per reload
        _VARIABLES.clear()
    _VARIABLES[id(params)] = (params, tuple(made))
    return tuple(made)


_VARIABLES: dict[int, tuple[DownwardAPISettings, tuple[_Variable, ...]]] = {}
"""Settings object's id -> (the object, its variables); the object is kept so that its id is not
reused while the entry stands."""


def _missing_env(container: dict[str, Any], params: DownwardAPISettings, present: set[str]) -> list[dict[str, Any]]:
    """The configured variables whose names are not in ``present``, in the configured order, made
    for ``container`` as fresh dicts (the copies share only strings with the templates). Only the
    missing ones are made: a container that has them all (this webhook's own output) costs none."""
    env: list[dict[str, Any]] = []
    container_name = container["name"]
    for variable in _variables(params):
        if variable.name in present:
            continue
        ref = variable.ref.copy()
        if variable.per_container:
            ref["containerName"] = container_name
        source = variable.source.copy()
        source[variable.ref_key] = ref
        entry = variable.entry.copy()
        entry["valueFrom"] = source
        env.append(entry)
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
        missing = _missing_env(container, params, {n for n in names if isinstance(n, str)})
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
