"""One walk over a pod collecting what the checks read, as the fact bits of :mod:`base`.

Upstream runs every check in force over the whole pod, each walking the containers again (up to
19 walks for three levels). Most pods fail few checks or none, so :func:`scan` walks the pod once
and sets a bit for each fact that could make some check fail (a privileged container, a volume
source restricted does not allow, a container that does not drop ``ALL``...); a check runs only
when the pod shows a fact its :attr:`base.Check.screen` names. The facts are necessary conditions
kept deliberately loose (a non-empty ``capabilities.add`` is a fact, whatever it adds): the check
itself still decides and words every finding, so messages are upstream's, byte for byte.

A fact must be set whenever a revision of a check naming it could fail, on any shape the checks
accept (a wrong type counts as unset there, and here). ``tests/test_plan.py`` checks this on the
conformance fixtures, real-world manifests and generated pods: a check whose screen says "cannot
fail" must indeed pass.
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import apparmor, base, seccomp, volumes

_ALLOWED_SOURCES = volumes.ALLOWED_SOURCES
_VALID_SECCOMP = seccomp.VALID_TYPES
_ANNOTATION_PREFIXES = (
    apparmor.ANNOTATION_PREFIX,
    seccomp.POD_ANNOTATION,
    seccomp.CONTAINER_ANNOTATION_PREFIX,
)
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _valid_seccomp(profile: dict[str, Any]) -> bool:
    kind = profile.get("type", "")
    return isinstance(kind, str) and kind in _VALID_SECCOMP


def _context_facts(sc: dict[str, Any]) -> int:
    """Facts a security context (pod or container) shows by itself."""
    found = 0
    if isinstance(sc.get("appArmorProfile"), dict):
        found |= base.APP_ARMOR
    if isinstance(sc.get("seLinuxOptions"), dict):
        found |= base.SE_LINUX
    profile = sc.get("seccompProfile")
    if isinstance(profile, dict) and not _valid_seccomp(profile):
        found |= base.SECCOMP_INVALID
    options = sc.get("windowsOptions")
    if isinstance(options, dict) and options.get("hostProcess") is True:
        found |= base.HOST_PROCESS
    if sc.get("runAsUser") == 0:
        found |= base.ROOT_USER
    return found


def _handler_host(handler: Any) -> bool:
    if not isinstance(handler, dict):
        return False
    for kind in ("httpGet", "tcpSocket"):
        action = handler.get(kind)
        if isinstance(action, dict) and action.get("host"):
            return True
    return False


def _probe_host(container: dict[str, Any]) -> bool:
    for probe in _PROBES:
        if _handler_host(container.get(probe)):
            return True
    lifecycle = container.get("lifecycle")
    return isinstance(lifecycle, dict) and (
        _handler_host(lifecycle.get("postStart")) or _handler_host(lifecycle.get("preStop"))
    )


def _volume_facts(volume: dict[str, Any]) -> int:
    found = base.HOST_PATH_VOLUME if volume.get("hostPath") is not None else 0
    sourced = False
    for key, value in volume.items():
        if value is None or key == "name":
            continue
        if key in _ALLOWED_SOURCES:
            return found
        sourced = True
    return found | base.RESTRICTED_VOLUME if sourced else found


def scan(target: Any) -> int:
    """The fact bits of ``target`` (a :class:`~webhook.policy.model.PodTarget`); binds its
    containers for the checks that run next (:func:`base.bind`)."""
    spec = target.spec
    found = 0
    if spec.get("hostNetwork") is True or spec.get("hostPID") is True or spec.get("hostIPC") is True:
        found |= base.HOST_NAMESPACES
    pod_sc = spec.get("securityContext")
    pod_non_root = False
    pod_seccomp = False
    if isinstance(pod_sc, dict):
        found |= _context_facts(pod_sc)
        non_root = pod_sc.get("runAsNonRoot")
        if non_root is False:
            found |= base.MAYBE_ROOT
        pod_non_root = non_root is not None and non_root is not False
        profile = pod_sc.get("seccompProfile")
        pod_seccomp = isinstance(profile, dict) and _valid_seccomp(profile)
        sysctls = pod_sc.get("sysctls")
        if isinstance(sysctls, list) and sysctls:
            found |= base.SYSCTLS
    for _field, _index, container in base.bind(target):
        sc = container.get("securityContext")
        if isinstance(sc, dict):
            found |= _context_facts(sc)
            if sc.get("privileged") is True:
                found |= base.PRIVILEGED
            if sc.get("allowPrivilegeEscalation") is not False:
                found |= base.PRIVILEGE_ESCALATION
            non_root = sc.get("runAsNonRoot")
            if non_root is False or (non_root is None and not pod_non_root):
                found |= base.MAYBE_ROOT
            if not pod_seccomp and not isinstance(sc.get("seccompProfile"), dict):
                found |= base.SECCOMP_UNSET
            proc_mount = sc.get("procMount")
            if proc_mount is not None and proc_mount != "Default":
                found |= base.PROC_MOUNT
            caps = sc.get("capabilities")
            if isinstance(caps, dict):
                drop = caps.get("drop")
                if not (isinstance(drop, list) and "ALL" in drop):
                    found |= base.CAPABILITIES_KEPT
                added = caps.get("add")
                if isinstance(added, list) and added:
                    found |= base.CAPABILITIES_ADDED
            else:
                found |= base.CAPABILITIES_KEPT
        else:
            found |= base.PRIVILEGE_ESCALATION | base.CAPABILITIES_KEPT
            if not pod_non_root:
                found |= base.MAYBE_ROOT
            if not pod_seccomp:
                found |= base.SECCOMP_UNSET
        ports = container.get("ports")
        if isinstance(ports, list):
            for port in ports:
                if isinstance(port, dict) and port.get("hostPort"):
                    found |= base.HOST_PORT
                    break
        if _probe_host(container):
            found |= base.PROBE_HOST
    pod_volumes = spec.get("volumes")
    if isinstance(pod_volumes, list):
        for volume in pod_volumes:
            if isinstance(volume, dict):
                found |= _volume_facts(volume)
    metadata = target.metadata
    annotations = metadata.get("annotations") if metadata else None
    if isinstance(annotations, dict) and annotations:
        for key in annotations:
            if key.startswith(_ANNOTATION_PREFIXES):
                found |= base.APP_ARMOR | base.SECCOMP_ANNOTATION
                break
    return found
