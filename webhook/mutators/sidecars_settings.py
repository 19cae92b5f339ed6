"""The sidecars group's settings: the pydantic models its policy files are validated with.

Kept apart from the mutation in :mod:`webhook.mutators.sidecars`, which mypyc compiles (see
``setup.py``): pydantic reads validators and field types from Python functions and module
globals, which a compiled module does not offer as it expects.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from webhook.mutators import sidecar_template
from webhook.policy import settings


class Sidecar(settings.StrictModel):
    """One named sidecar. Every string may use ``${pod.name}``-style references (see sidecar_template.py)."""

    container: dict[str, Any]
    """The container, as in a pod spec; ``name`` defaults to the sidecar's name and must equal it."""
    mode: Literal["native", "classic"] = "native"
    position: Literal["first", "last"] | None = None
    """Where the container goes in its list. Default: native sidecars first in ``initContainers``
    (running before the app's init containers), classic ones last in ``containers`` (so ``kubectl
    logs`` still picks the app as the first container)."""
    initContainers: tuple[dict[str, Any], ...] = ()
    """Plain init containers the sidecar needs (run once), placed just before it."""
    volumes: tuple[dict[str, Any], ...] = ()
    """Volumes the sidecar needs, appended to ``spec.volumes``."""
    volumeMounts: tuple[dict[str, Any], ...] = ()
    """Mounts added to the pod's own regular containers (e.g. the shared log directory)."""
    mountContainers: tuple[str, ...] = ("*",)
    """Names or globs of the pod's regular containers that get ``volumeMounts``."""

    @pydantic.field_validator("container", "initContainers", "volumes", "volumeMounts")
    @classmethod
    def _valid_templates(cls, value: Any) -> Any:
        sidecar_template.validate(value)
        return value

    @pydantic.model_validator(mode="after")
    def _named_parts(self) -> Sidecar:
        for kind, items in (("initContainers", self.initContainers), ("volumes", self.volumes)):
            names = [item.get("name") for item in items]
            if not all(isinstance(n, str) and n for n in names):
                raise ValueError(f"every entry of {kind} needs a name")
            if any("$" in str(n) for n in names):
                # Names identify our parts on reinvocation, so they must not vary per pod.
                raise ValueError(f"{kind} names must be literal (no template references)")
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names must be unique")
        volume_names = {v["name"] for v in self.volumes}
        for mount in self.volumeMounts:
            if mount.get("name") not in volume_names or not mount.get("mountPath"):
                raise ValueError(
                    f"volumeMount {mount!r} needs a mountPath and the name of one of this sidecar's volumes"
                )
        if not self.container.get("image"):
            raise ValueError("container needs an image")
        return self


class SidecarsSettings(settings.MutatingGroupSettings):
    optOutAnnotation: str | None = "sidecar.admission.dev/inject"
    sidecars: dict[str, Sidecar] = {}
    defaultSidecars: tuple[str, ...] | None = None
    """Sidecars injected when the pod does not select any; ``null`` means every defined sidecar."""
    injectByDefault: bool = False
    """Inject into pods that neither opt in nor out (and whose namespace does not match below)."""
    namespaceSelector: settings.LabelSelector | None = None
    """Namespaces whose pods are injected unless they opt out. Unlike ``scope.namespaceSelector``
    (which gates the whole group), this is one way to opt in: a pod annotation works elsewhere too."""
    injectAnnotation: str = "sidecar.admission.dev/inject"
    injectLabel: str = "sidecar.admission.dev/inject"
    selectAnnotation: str = "sidecar.admission.dev/sidecars"
    injectedAnnotation: str = "sidecar.admission.dev/injected"

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> SidecarsSettings:
        owners: dict[str, str] = {}
        volumes: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, sidecar in self.sidecars.items():
            if "," in name or not name.strip():
                raise ValueError(f"sidecar name {name!r} must be non-empty and contain no comma")
            given = sidecar.container.get("name", name)
            if given != name:
                raise ValueError(f"sidecar {name!r}: container name {given!r} must equal the sidecar's name")
            for container_name in (name, *(c["name"] for c in sidecar.initContainers)):
                if container_name in owners:
                    raise ValueError(
                        f"container name {container_name!r} is used by sidecars {owners[container_name]!r} "
                        f"and {name!r}"
                    )
                owners[container_name] = name
            for volume in sidecar.volumes:
                other = volumes.setdefault(volume["name"], (name, volume))
                if other[1] != volume:
                    raise ValueError(
                        f"volume {volume['name']!r} is defined differently by sidecars "
                        f"{other[0]!r} and {name!r}"
                    )
        unknown = [n for n in self.defaultSidecars or () if n not in self.sidecars]
        if unknown:
            raise ValueError(f"defaultSidecars names undefined sidecars: {', '.join(unknown)}")
        return self


