"""``appArmorProfile`` (baseline, v1.0+): the runtime's default AppArmor profile must not be disabled.

Upstream ``check_appArmorProfile.go`` looks at both channels, and both stay live at every version:
the ``securityContext.appArmorProfile.type`` field (pod and every container) must be
``RuntimeDefault`` or ``Localhost``; the deprecated ``container.apparmor.security.beta.kubernetes.io/*``
annotations must be empty, ``runtime/default`` or ``localhost/...``.
"""

from __future__ import annotations

from typing import Any

from webhook import gotext
from webhook.validators.pod_security import base

ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
ALLOWED_TYPES = frozenset({"RuntimeDefault", "Localhost"})


def _allowed_annotation(value: Any) -> bool:
    return (
        value == ""
        or value == "runtime/default"
        or (isinstance(value, str) and value.startswith("localhost/"))
    )


def _bad_type(sc: Any) -> str | None:
    """The profile type when ``sc`` sets an ``appArmorProfile`` whose type is not allowed."""
    if not isinstance(sc, dict):
        return None
    profile = sc.get("appArmorProfile")
    if not isinstance(profile, dict):
        return None
    kind = profile.get("type", "")
    return None if base.among(kind, ALLOWED_TYPES) else str(kind)


def app_armor_profile_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    setters: list[str] = []
    values: set[str] = set()
    first: tuple[str, Any] | None = None

    pod_bad = _bad_type(spec.get("securityContext"))
    if pod_bad is not None:
        setters.append("pod")
        values.add(pod_bad)
        first = ("spec.securityContext.appArmorProfile.type", pod_bad)

    bad_containers: list[str] = []
    for field, index, container in base.containers(spec):
        container_bad = _bad_type(container.get("securityContext"))
        if container_bad is not None:
            bad_containers.append(base.name_of(container))
            values.add(container_bad)
            if first is None:
                first = (
                    f"{base.container_path(field, index)}.securityContext.appArmorProfile.type",
                    container_bad,
                )
    if bad_containers:
        setters.append(base.containers_phrase(bad_containers))

    forbidden = sorted(
        (key, value)
        for key, value in base.annotations_of(meta).items()
        if key.startswith(ANNOTATION_PREFIX) and not _allowed_annotation(value)
    )
    bad_values = sorted(values)
    if forbidden:
        bad_values.extend(f"{key}={gotext.quote(str(value))}" for key, value in forbidden)
        setters.append(base.pluralize("annotation", "annotations", len(forbidden)))
        if first is None:
            first = (base.annotation_path(forbidden[0][0]), forbidden[0][1])

    if first is None:
        return None
    return base.Result(
        base.pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {base.join_quote(bad_values)}",
        first[0],
        first[1],
        sorted(ALLOWED_TYPES),
    )


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "appArmorProfile",
        "baseline",
        (base.Revision(0, app_armor_profile_v1_0),),
        "AppArmor may not be disabled (Unconfined) by field or annotation.",
        screen=base.APP_ARMOR,
    ),
)
