"""``hostPathVolumes`` (baseline) and ``restrictedVolumes`` (restricted, overrides ``hostPathVolumes``).

Upstream ``check_hostPathVolumes.go`` forbids ``spec.volumes[*].hostPath``.
``check_restrictedVolumes.go`` allows only the inline sources that cannot reach node or network
storage directly: configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim,
projected, secret (``image`` was patched into the v1.0 revision upstream, so every version allows it).
Any other source is named in the detail; a source unknown to this catalog is ``unknown`` (fail
closed, as upstream). A volume with no source at all is an ``emptyDir`` (API server defaulting).
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base

ALLOWED_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# The restricted sources in upstream's switch order: when a (malformed) volume sets several, the
# first one listed here names it, as upstream does.
RESTRICTED_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)


def _volumes(spec: base.Pod) -> list[tuple[int, dict[str, Any]]]:
    volumes = spec.get("volumes")
    if not isinstance(volumes, list):
        return []
    return [(index, volume) for index, volume in enumerate(volumes) if isinstance(volume, dict)]


def host_path_volumes_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: list[str] = []
    first: tuple[str, Any] | None = None
    for index, volume in _volumes(spec):
        if volume.get("hostPath") is not None:
            bad.append(base.name_of(volume))
            if first is None:
                first = (f"spec.volumes[{index}].hostPath", volume["hostPath"])
    if first is None:
        return None
    return base.Result(
        "hostPath volumes",
        f"{base.pluralize('volume', 'volumes', len(bad))} {base.join_quote(bad)}",
        first[0],
        first[1],
    )


def _has(volume: dict[str, Any], source: str) -> bool:
    return volume.get(source) is not None


def restricted_volumes_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: list[str] = []
    types: set[str] = set()
    first: tuple[str, Any] | None = None
    for index, volume in _volumes(spec):
        if any(_has(volume, source) for source in ALLOWED_SOURCES):
            continue
        if all(key == "name" or value is None for key, value in volume.items()):
            # The API server defaults a volume without a source to emptyDir before admission.
            continue
        kind = next((source for source in RESTRICTED_SOURCES if _has(volume, source)), "unknown")
        bad.append(base.name_of(volume))
        types.add(kind)
        if first is None:
            path = f"spec.volumes[{index}]" + ("" if kind == "unknown" else f".{kind}")
            first = (path, kind)
    if first is None:
        return None
    ordered = sorted(types)
    return base.Result(
        "restricted volume types",
        f"{base.pluralize('volume', 'volumes', len(bad))} {base.join_quote(bad)} "
        f"{base.pluralize('uses', 'use', len(bad))} "
        f"{base.pluralize('restricted volume type', 'restricted volume types', len(ordered))} "
        f"{base.join_quote(ordered)}",
        first[0],
        first[1],
        sorted(ALLOWED_SOURCES),
    )


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "hostPathVolumes",
        "baseline",
        (base.Revision(0, host_path_volumes_v1_0),),
        "hostPath volumes are forbidden.",
        screen=base.HOST_PATH_VOLUME,
    ),
    base.Check(
        "restrictedVolumes",
        "restricted",
        (base.Revision(0, restricted_volumes_v1_0, overrides=("hostPathVolumes",)),),
        "Only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, "
        "projected and secret volumes are allowed.",
        screen=base.RESTRICTED_VOLUME,
    ),
)
