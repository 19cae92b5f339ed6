"""Sidecar injection: named container templates from policy files, added to opted-in pods.

Modelled on the injectors of Istio and Linkerd, with their hard-learned rules:

* **Opt-in**, decided per pod in this order: the pod's ``sidecar.admission.dev/inject`` annotation,
  then the label of the same name, then the group's ``namespaceSelector`` (namespace labels), then
  ``injectByDefault``. ``"true"``/``"false"`` (also enabled/disabled, yes/no, on/off) are accepted;
  any other value is refused with a message, so a typo never silently skips injection.
* **Selection**: ``sidecar.admission.dev/sidecars: "log-shipper,proxy"`` picks sidecars by name;
  without it, ``defaultSidecars`` (all defined sidecars when unset) are injected.
* **Native or classic** per sidecar: native sidecars are init containers with ``restartPolicy:
  Always`` (KEP-753, beta and on by default since Kubernetes 1.29): they start before the app,
  stay up, and do not keep a Job from completing. Classic sidecars are regular containers.
* **Never twice**: the names injected are recorded in ``sidecar.admission.dev/injected`` on the pod
  (template). A recorded sidecar whose container is present is a no-op, so reinvocation
  (``reinvocationPolicy: IfNeeded``) and re-submitting a mutated object yield an empty patch; parts
  of a recorded sidecar that went missing are added back.
* **No silent overwrite**: a user container, init container or volume with a sidecar's name that we
  did not record, or a user mount at the path a sidecar mount needs, is refused with
  :class:`~webhook.errors.MutationRejected` naming it, *before* anything is changed.

Injected sidecars are never removed: the group only adds.
"""

from __future__ import annotations

from typing import Any

from webhook import errors
from webhook.mutators import sidecar_template
from webhook.mutators.sidecars_settings import Sidecar, SidecarsSettings
from webhook.policy import model, registry, scope

GROUP = "sidecars"

_TRUE = ("true", "enabled", "yes", "on")
_FALSE = ("false", "disabled", "no", "off")


registry.group(
    GROUP,
    key="sidecars",
    chain="mutating",
    settings_model=SidecarsSettings,
    order=10,
    description="Inject named sidecar containers (native or classic) into opted-in pods.",
)


def _switch(value: Any, *, what: str) -> bool | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise errors.MutationRejected(f'{what} has value {value!r}; set it to "true" or "false"')


def wants_injection(target: model.PodTarget, ctx: model.ReviewContext, params: SidecarsSettings) -> bool:
    """The opt-in decision: annotation, then label, then namespace selector, then the default."""
    annotation = _switch(
        target.annotations.get(params.injectAnnotation), what=f"annotation {params.injectAnnotation}"
    )
    if annotation is not None:
        return annotation
    label = _switch(target.labels.get(params.injectLabel), what=f"label {params.injectLabel}")
    if label is not None:
        return label
    if (
        params.namespaceSelector is not None
        and ctx.namespace_labels is not None
        and scope.selector_matches(params.namespaceSelector, ctx.namespace_labels)
    ):
        return True
    return params.injectByDefault


def _names(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    return [n.strip() for n in value.split(",") if n.strip()]


def selected(target: model.PodTarget, params: SidecarsSettings) -> list[str]:
    """The sidecars the pod asks for (in its order), or the defaults; unknown names are refused."""
    raw = target.annotations.get(params.selectAnnotation)
    if raw is None:
        return list(params.defaultSidecars if params.defaultSidecars is not None else params.sidecars)
    names = list(dict.fromkeys(_names(raw)))
    unknown = [n for n in names if n not in params.sidecars]
    if unknown:
        raise errors.MutationRejected(
            f"annotation {params.selectAnnotation} names unknown sidecar(s) {', '.join(unknown)}; "
            f"defined: {', '.join(sorted(params.sidecars)) or 'none'}"
        )
    return names


def _pod_values(target: model.PodTarget, ctx: model.ReviewContext) -> sidecar_template.PodValues:
    meta = target.metadata or {}
    obj_meta = target.obj.get("metadata")
    if not isinstance(obj_meta, dict):
        obj_meta = {}
    name = meta.get("name") or meta.get("generateName") or obj_meta.get("name") or ""
    namespace = meta.get("namespace") or obj_meta.get("namespace") or ctx.namespace
    return sidecar_template.PodValues(
        name=str(name), namespace=str(namespace or ""), labels=target.labels, annotations=target.annotations
    )


def _named(items: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {i["name"]: i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)}


def _list(spec: dict[str, Any], field: str) -> list[Any] | None:
    """``spec[field]`` when it is a list or absent (``[]``); ``None`` for a malformed value."""
    value = spec.get(field)
    if value is None:
        return []
    return value if isinstance(value, list) else None


@registry.mutation("sidecars.inject", group=GROUP, pod_spec=True, order=10,
                   writes=("spec", "spec.containers[*]", "metadata.annotations"))
def inject(target: model.PodTarget, ctx: model.ReviewContext, params: SidecarsSettings) -> None:
    """Inject the selected sidecars into an opted-in pod (template), once, refusing name clashes."""
    if not params.sidecars or not wants_injection(target, ctx, params):
        return
    names = selected(target, params)
    if not names:
        return
    spec = target.spec
    init_list, container_list = _list(spec, "initContainers"), _list(spec, "containers")
    volume_list = _list(spec, "volumes")
    if init_list is None or container_list is None or volume_list is None:
        return  # malformed lists: the API server rejects the object; do not guess
    recorded = _names(target.annotations.get(params.injectedAnnotation))
    containers = {**_named(init_list), **_named(container_list), **_named(spec.get("ephemeralContainers"))}
    volumes = _named(volume_list)
    # Containers that are (or are about to be) our sidecars never get the app's mounts.
    ours = {
        n
        for name in (*recorded, *names)
        if name in params.sidecars
        for n in _container_names(name, params.sidecars[name])
    }
    pod = _pod_values(target, ctx)

    plan = _Plan()
    clashes: list[str] = []
    for name in names:
        sidecar = params.sidecars[name]
        # A sidecar recorded as injected owns whatever carries its names: parts already there are
        # kept as they are, missing parts are added back, and nothing is a clash.
        trusted = name in recorded
        clashes += _plan_containers(name, sidecar, containers, pod=pod, trusted=trusted, plan=plan)
        for volume in (sidecar_template.render(v, pod=pod) for v in sidecar.volumes):
            if volume["name"] in volumes:
                if not trusted:
                    clashes.append(f'the pod already has a volume named "{volume["name"]}"')
            elif all(v["name"] != volume["name"] for v in plan.volumes):
                plan.volumes.append(volume)
        clashes += _plan_mounts(sidecar, container_list, ours, pod=pod, trusted=trusted, plan=plan)
        if not trusted:
            plan.record.append(name)

    if clashes:
        raise errors.MutationRejected(
            f"cannot inject sidecar(s) {', '.join(names)}: {'; '.join(dict.fromkeys(clashes))} "
            f"(not recorded in annotation {params.injectedAnnotation}); rename the pod's own container, "
            f'volume or mount path, or opt the pod out with annotation {params.injectAnnotation}: "false"'
        )
    plan.apply(target, recorded=recorded, annotation=params.injectedAnnotation)


def _plan_containers(
    name: str,
    sidecar: Sidecar,
    existing: dict[str, dict[str, Any]],
    *,
    pod: sidecar_template.PodValues,
    trusted: bool,
    plan: _Plan,
) -> list[str]:
    """Plan the sidecar container and its init containers where they belong; return clashes."""
    container = {"name": name, **sidecar_template.render(sidecar.container, pod=pod)}
    if sidecar.mode == "native":
        # KEP-753: an init container with restartPolicy Always is a sidecar that keeps running.
        container.setdefault("restartPolicy", "Always")
    parts = [*(sidecar_template.render(c, pod=pod) for c in sidecar.initContainers), container]
    fresh = [c for c in parts if c["name"] not in existing]
    if sidecar.mode == "native":
        (plan.init_first if (sidecar.position or "first") == "first" else plan.init_last).extend(fresh)
    else:
        inits = [c for c in fresh if c is not container]
        (plan.init_first if sidecar.position == "first" else plan.init_last).extend(inits)
        if container["name"] not in existing:
            (plan.first if sidecar.position == "first" else plan.last).append(container)
    if trusted:
        return []
    return [f'the pod already has a container named "{c["name"]}"' for c in parts if c["name"] in existing]


def _container_names(name: str, sidecar: Sidecar) -> list[str]:
    return [name, *(c["name"] for c in sidecar.initContainers)]


def _plan_mounts(
    sidecar: Sidecar,
    container_list: list[Any],
    ours: set[str],
    *,
    pod: sidecar_template.PodValues,
    trusted: bool,
    plan: _Plan,
) -> list[str]:
    """Plan the sidecar's mounts into the pod's own regular containers; return clashes.

    A container that already mounts the same volume at the same path is left alone. A different
    volume at that path is a clash (the API server rejects two mounts at one path), unless the
    sidecar is recorded as injected: then the user changed it since, and we keep out of the way.
    """
    clashes: list[str] = []
    mounts = [sidecar_template.render(m, pod=pod) for m in sidecar.volumeMounts]
    if not mounts:
        return clashes
    for index, container in enumerate(container_list):
        if not isinstance(container, dict):
            continue
        name = container.get("name")
        if not isinstance(name, str) or name in ours or not scope.glob_match(name, sidecar.mountContainers):
            continue
        existing = container.get("volumeMounts")
        if existing is not None and not isinstance(existing, list):
            continue
        by_path = {m.get("mountPath"): m for m in existing or [] if isinstance(m, dict)}
        for mount in mounts:
            present = by_path.get(mount["mountPath"])
            if present is None:
                planned = plan.mounts.setdefault(index, [])
                if mount not in planned:
                    planned.append(mount)
            elif present.get("name") != mount["name"] and not trusted:
                clashes.append(
                    f'container "{name}" already mounts volume "{present.get("name")}" '
                    f'at {mount["mountPath"]}'
                )
    return clashes


class _Plan:
    """Everything an injection adds, gathered before anything is changed."""

    def __init__(self) -> None:
        self.init_first: list[dict[str, Any]] = []
        self.init_last: list[dict[str, Any]] = []
        self.first: list[dict[str, Any]] = []
        self.last: list[dict[str, Any]] = []
        self.volumes: list[dict[str, Any]] = []
        self.mounts: dict[int, list[dict[str, Any]]] = {}
        self.record: list[str] = []

    def apply(self, target: model.PodTarget, *, recorded: list[str], annotation: str) -> None:
        spec = target.spec
        if self.init_first or self.init_last:
            spec["initContainers"] = [*self.init_first, *(spec.get("initContainers") or []), *self.init_last]
        for index, mounts in self.mounts.items():
            container = spec["containers"][index]
            container["volumeMounts"] = [*(container.get("volumeMounts") or []), *mounts]
        if self.first or self.last:
            spec["containers"] = [*self.first, *(spec.get("containers") or []), *self.last]
        if self.volumes:
            spec["volumes"] = [*(spec.get("volumes") or []), *self.volumes]
        if self.record:
            _write_annotation(target, annotation, ",".join(dict.fromkeys([*recorded, *self.record])))


def _write_annotation(target: model.PodTarget, key: str, value: str) -> None:
    metadata = target.metadata_for_write()
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
        metadata["annotations"] = annotations
    annotations[key] = value

