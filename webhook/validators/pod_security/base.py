"""What every Pod Security check shares: the result shape, the versioned-check record, wording helpers.

Mirrors ``k8s.io/pod-security-admission/policy``: a check has an id, a level, and one or more
revisions each applying from a ``MinimumVersion``; a revision is a pure function of the pod's
metadata and spec that returns at most one result (upstream's ``CheckResult``). Wording helpers
reproduce upstream's ``pluralize``/``joinQuote`` and Go's ``%q`` so messages match byte for byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from webhook.policy import workloads

Pod = Mapping[str, Any]


class Result(NamedTuple):
    """One failed check: upstream's ``ForbiddenReason``/``ForbiddenDetail``, plus the first offending
    field (dotted, rooted at ``spec`` or ``metadata`` of the pod) and what was found there."""

    reason: str
    detail: str
    path: str
    value: Any = None
    allowed: Any = None


CheckImpl = Callable[[Pod, Pod], "Result | None"]
"""``fn(metadata, spec) -> Result | None``; ``None`` means allowed."""

CheckLevel = Literal["baseline", "restricted"]


@dataclasses.dataclass(frozen=True, slots=True)
class Revision:
    """One revision of a check, in force from policy version ``v1.<since>`` until the next revision."""

    since: int
    fn: CheckImpl
    overrides: tuple[str, ...] = ()
    """Baseline check ids this (restricted) revision replaces, as upstream ``OverrideCheckIDs``."""


# What one walk over a pod finds (:func:`webhook.validators.pod_security.facts.scan`), as bits. A
# check declares the facts without which none of its revisions can fail (:attr:`Check.screen`);
# a pod showing none of them passes the check without it being run. Each fact is a *necessary*
# condition, never a sufficient one: when it is set the check itself decides and words the result.
PRIVILEGED = 1 << 0
"""A container sets ``securityContext.privileged: true``."""
HOST_NAMESPACES = 1 << 1
"""``hostNetwork``, ``hostPID`` or ``hostIPC`` is true."""
HOST_PATH_VOLUME = 1 << 2
"""A volume has a ``hostPath``."""
RESTRICTED_VOLUME = 1 << 3
"""A volume sets a source and none of the sources restricted allows."""
CAPABILITIES_ADDED = 1 << 4
"""A container's ``capabilities.add`` is a non-empty list."""
CAPABILITIES_KEPT = 1 << 5
"""A container does not drop ``ALL`` capabilities (no capabilities, or ``ALL`` not in ``drop``)."""
HOST_PORT = 1 << 6
"""A container port sets a ``hostPort``."""
APP_ARMOR = 1 << 7
"""An ``appArmorProfile`` (pod or container) or an AppArmor annotation."""
SE_LINUX = 1 << 8
"""``seLinuxOptions`` (pod or container)."""
PROC_MOUNT = 1 << 9
"""A container's ``procMount`` other than ``Default``."""
SECCOMP_ANNOTATION = 1 << 10
"""A seccomp alpha annotation (pod or container)."""
SECCOMP_INVALID = 1 << 11
"""A ``seccompProfile`` (pod or container) whose type is not ``RuntimeDefault`` or ``Localhost``."""
SECCOMP_UNSET = 1 << 12
"""No valid pod ``seccompProfile``, and a container without one."""
SYSCTLS = 1 << 13
"""``securityContext.sysctls`` is a non-empty list."""
HOST_PROCESS = 1 << 14
"""``windowsOptions.hostProcess: true`` (pod or container)."""
PROBE_HOST = 1 << 15
"""A probe or lifecycle handler sets a ``host``."""
MAYBE_ROOT = 1 << 16
"""``runAsNonRoot`` is false somewhere, or not true at pod level and unset on a container."""
ROOT_USER = 1 << 17
"""``runAsUser: 0`` (pod or container)."""
PRIVILEGE_ESCALATION = 1 << 18
"""A container does not set ``allowPrivilegeEscalation: false``."""
ANY = (1 << 19) - 1
"""Every fact: the screen of a check that declares none (it always runs)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: CheckLevel
    revisions: tuple[Revision, ...]
    description: str
    screen: int = ANY
    """The facts (bits above) at least one of which a pod must show for any revision to fail it.
    ``tests/test_plan.py`` holds every check to it over fixtures and generated pods."""


def pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def containers_phrase(names: list[str]) -> str:
    """``container "a"`` / ``containers "a", "b"`` -- how upstream names the offending containers."""
    return f"{pluralize('container', 'containers', len(names))} {join_quote(names)}"


def join_quote(items: list[str]) -> str:
    """``"a", "b"`` -- upstream ``joinQuote`` (no escaping, as upstream)."""
    return '"' + '", "'.join(items) + '"' if items else ""


def as_dict(value: Any) -> Mapping[str, Any] | None:
    """``value`` when it is a mapping, else ``None``: a wrong shape counts as unset, never a crash
    (the API server's own validation rejects such objects)."""
    return value if isinstance(value, dict) else None


_bound: tuple[Any, tuple[Any, ...], list[tuple[str, int, dict[str, Any]]]] = (None, (), [])


def _signature(spec: Any) -> tuple[Any, ...]:
    """Which containers ``spec`` holds now, by identity: the walk below is a list of references to
    them, so it stays right while the lists hold the same items (a few ``id`` calls per check)."""
    # Spelled out, not a generator over the three field names: this runs several times per review.
    init, regular, ephemeral = spec.get("initContainers"), spec.get("containers"), spec.get("ephemeralContainers")
    return (tuple(map(id, init)) if isinstance(init, list) else None,
            tuple(map(id, regular)) if isinstance(regular, list) else None,
            tuple(map(id, ephemeral)) if isinstance(ephemeral, list) else None)


def bind(target: Any) -> list[tuple[str, int, dict[str, Any]]]:
    """Walk ``target``'s containers once for all the checks of one review; returns them.

    The walk is kept with the spec it describes and the identities of its containers, and redone
    whenever they differ: a caller that edited the pod (a mutation added, replaced or removed a
    container) gets a fresh walk without having to ask for one.
    """
    global _bound
    spec = target.spec
    signature = _signature(spec)
    if _bound[0] is not spec or _bound[1] != signature:
        _bound = (spec, signature, workloads.containers(spec))
    return _bound[2]


def containers(spec: Pod) -> list[tuple[str, int, dict[str, Any]]]:
    """Init, regular, then ephemeral containers -- upstream ``visitContainers`` order."""
    if _bound[0] is spec and _bound[1] == _signature(spec):
        return _bound[2]
    return workloads.containers(spec)  # type: ignore[arg-type]


def container_path(field: str, index: int) -> str:
    return f"spec.{field}[{index}]"


def name_of(container: Mapping[str, Any]) -> str:
    name = container.get("name")
    return name if isinstance(name, str) else ""


def security_context(container: Mapping[str, Any]) -> Mapping[str, Any] | None:
    sc = container.get("securityContext")
    return sc if isinstance(sc, dict) else None


def pod_security_context(spec: Pod) -> Mapping[str, Any] | None:
    sc = spec.get("securityContext")
    return sc if isinstance(sc, dict) else None


def annotations_of(meta: Pod) -> Mapping[str, Any]:
    found = meta.get("annotations")
    return found if isinstance(found, dict) else {}


def is_windows(spec: Pod) -> bool:
    """``spec.os.name == "windows"``: from policy v1.25 the Linux-only restricted checks exempt such
    pods (the API server rejects Linux-only fields on them)."""
    os_ = spec.get("os")
    return isinstance(os_, dict) and os_.get("name") == "windows"


def in_user_namespace(spec: Pod) -> bool:
    """``spec.hostUsers: false`` -- KEP-127 relaxations apply unconditionally from policy v1.35."""
    return spec.get("hostUsers") is False


def annotation_path(key: str) -> str:
    return f"metadata.annotations[{key}]"


def among(value: Any, allowed: Any) -> bool:
    """``value in allowed`` where a wrong-typed value (a list where a string belongs) is simply not
    allowed: the API server rejects such objects itself, and a check must never crash on them."""
    try:
        return value in allowed
    except TypeError:
        return False
