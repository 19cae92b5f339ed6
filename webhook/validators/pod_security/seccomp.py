"""``seccompProfile_baseline`` (baseline) and ``seccompProfile_restricted`` (restricted, v1.19+).

Upstream ``check_seccompProfile_baseline.go``: before v1.19 the alpha annotations
(``seccomp.security.alpha.kubernetes.io/pod``, ``container.seccomp.security.alpha.kubernetes.io/<name>``)
must be ``runtime/default``, ``docker/default`` or ``localhost/*``; from v1.19 the
``securityContext.seccompProfile.type`` fields must be unset, ``RuntimeDefault`` or ``Localhost``.
``check_seccompProfile_restricted.go`` (overrides the baseline check from v1.19) additionally requires
the type to be *set*, at pod level or on every container; from v1.25 Windows pods are exempt.
"""

from __future__ import annotations

from typing import Any

from webhook import gotext
from webhook.validators.pod_security import base

POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
VALID_TYPES = frozenset({"RuntimeDefault", "Localhost"})


def _valid_annotation(value: Any) -> bool:
    return value in ("runtime/default", "docker/default") or (
        isinstance(value, str) and value.startswith("localhost/")
    )


def seccomp_profile_baseline_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    annotations = base.annotations_of(meta)
    forbidden: dict[str, str] = {}
    if POD_ANNOTATION in annotations and not _valid_annotation(annotations[POD_ANNOTATION]):
        value = annotations[POD_ANNOTATION]
        forbidden[f"{POD_ANNOTATION}={gotext.quote(str(value))}"] = POD_ANNOTATION
    for _field, _index, container in base.containers(spec):
        key = CONTAINER_ANNOTATION_PREFIX + base.name_of(container)
        if key in annotations and not _valid_annotation(annotations[key]):
            forbidden[f"{key}={gotext.quote(str(annotations[key]))}"] = key
    if not forbidden:
        return None
    ordered = sorted(forbidden)
    first_key = forbidden[ordered[0]]
    return base.Result(
        "seccompProfile",
        f"forbidden {base.pluralize('annotation', 'annotations', len(ordered))} {', '.join(ordered)}",
        base.annotation_path(first_key),
        annotations[first_key],
        "runtime/default",
    )


def _profile_type(sc: Any) -> tuple[bool, Any]:
    """(whether ``sc`` sets a seccompProfile, its type)."""
    profile = sc.get("seccompProfile") if isinstance(sc, dict) else None
    if not isinstance(profile, dict):
        return False, None
    return True, profile.get("type", "")


def seccomp_profile_baseline_v1_19(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    setters: list[str] = []
    values: set[str] = set()
    first: tuple[str, Any] | None = None
    is_set, kind = _profile_type(spec.get("securityContext"))
    if is_set and not base.among(kind, VALID_TYPES):
        setters.append("pod")
        values.add(str(kind))
        first = ("spec.securityContext.seccompProfile.type", kind)
    bad: list[str] = []
    for field, index, container in base.containers(spec):
        is_set, kind = _profile_type(container.get("securityContext"))
        if is_set and not base.among(kind, VALID_TYPES):
            bad.append(base.name_of(container))
            values.add(str(kind))
            if first is None:
                first = (f"{base.container_path(field, index)}.securityContext.seccompProfile.type", kind)
    if bad:
        setters.append(f"{base.containers_phrase(bad)}")
    if first is None:
        return None
    return base.Result(
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
        f"{base.join_quote(sorted(values))}",
        first[0],
        first[1],
        sorted(VALID_TYPES),
    )


def seccomp_profile_restricted_v1_19(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    setters: list[str] = []
    values: set[str] = set()
    first: tuple[str, Any] | None = None
    pod_set = False
    is_set, kind = _profile_type(spec.get("securityContext"))
    if is_set:
        if base.among(kind, VALID_TYPES):
            pod_set = True
        else:
            setters.append("pod")
            values.add(str(kind))
            first = ("spec.securityContext.seccompProfile.type", kind)
    explicit: list[str] = []
    implicit: list[str] = []
    first_implicit: str | None = None
    for field, index, container in base.containers(spec):
        is_set, kind = _profile_type(container.get("securityContext"))
        if is_set:
            if not base.among(kind, VALID_TYPES):
                explicit.append(base.name_of(container))
                values.add(str(kind))
                if first is None:
                    first = (f"{base.container_path(field, index)}.securityContext.seccompProfile.type", kind)
        elif not pod_set:
            implicit.append(base.name_of(container))
            if first_implicit is None:
                first_implicit = f"{base.container_path(field, index)}.securityContext.seccompProfile.type"
    if explicit:
        setters.append(
            f"{base.containers_phrase(explicit)}"
        )
    if first is not None:
        return base.Result(
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{base.join_quote(sorted(values))}",
            first[0],
            first[1],
            sorted(VALID_TYPES),
        )
    if first_implicit is not None:
        return base.Result(
            "seccompProfile",
            f"pod or {base.containers_phrase(implicit)} "
            'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
            first_implicit,
            None,
            sorted(VALID_TYPES),
        )
    return None


def seccomp_profile_restricted_v1_25(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    # The API server rejects seccompProfile on Windows pods, so it cannot be required of them.
    if base.is_windows(spec):
        return None
    return seccomp_profile_restricted_v1_19(meta, spec)


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "seccompProfile_baseline",
        "baseline",
        (base.Revision(0, seccomp_profile_baseline_v1_0), base.Revision(19, seccomp_profile_baseline_v1_19)),
        "Seccomp may not be disabled (Unconfined).",
        screen=base.SECCOMP_ANNOTATION | base.SECCOMP_INVALID,
    ),
    base.Check(
        "seccompProfile_restricted",
        "restricted",
        (
            base.Revision(19, seccomp_profile_restricted_v1_19, overrides=("seccompProfile_baseline",)),
            base.Revision(25, seccomp_profile_restricted_v1_25, overrides=("seccompProfile_baseline",)),
        ),
        "A seccomp profile (RuntimeDefault or Localhost) must be set.",
        screen=base.SECCOMP_INVALID | base.SECCOMP_UNSET,
    ),
)
