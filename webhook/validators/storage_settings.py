"""The storage group's settings: the pydantic models its policy files are validated with.

Kept apart from the checks in :mod:`webhook.validators.storage`, which mypyc compiles (see
``setup.py``): pydantic reads validators and field types from Python functions and module
globals, which a compiled module does not offer as it expects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from webhook import quantity
from webhook.policy import settings

AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


def _valid_quantity(text: str) -> str:
    quantity.parse(text)  # raises ValueError with the reason, which pydantic reports at the key
    return text


def _number_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Quantity = Annotated[str, pydantic.BeforeValidator(_number_as_text), pydantic.AfterValidator(_valid_quantity)]
"""A quantity string (``1Ti``, ``500Gi``) checked when the policy file loads; a bare YAML number is
accepted as the API server accepts one."""


class ClassRules(settings.StrictModel):
    """Rules for one StorageClass, keyed by its name under ``classes:``."""

    maxSize: Quantity | None = None
    """Largest ``requests.storage`` a claim of this class may ask for."""
    accessModes: tuple[AccessMode, ...] = ()
    """Access modes claims of this class may ask for; empty allows any. A block-storage class
    lists ``[ReadWriteOnce, ReadWriteOncePod]`` (no ReadWriteMany); a single-writer class
    ``[ReadWriteOncePod]``."""
    protected: bool = False
    """Data that must survive its claim: PVs must ``Retain``, the StorageClass must ``Retain`` and bind
    ``WaitForFirstConsumer``, and (with ``persistentVolumes.denyProtectedDelete``) PVs are not deleted."""
    allowVolumeExpansion: bool | None = None
    """Required value of the StorageClass's ``allowVolumeExpansion``; ``None`` uses ``storageClasses``'."""


class NamespaceRules(settings.StrictModel):
    """Rules for claims in some namespaces; the first entry whose ``namespaces`` match applies."""

    namespaces: tuple[str, ...] = pydantic.Field(min_length=1)
    """Namespace names or globs."""
    allowedClasses: tuple[str, ...] = ()
    """Classes (globs) claims may use there; empty allows any."""
    maxSize: Quantity | None = None


class ClaimRules(settings.StrictModel):
    allowExpansionRecovery: bool = True
    """Allow lowering a request that is still at least ``status.capacity.storage`` (recovering from a
    failed expansion, as the API server allows); ``false`` means a claim may only grow."""


class PersistentVolumeRules(settings.StrictModel):
    allowedHostPaths: tuple[str, ...] = ()
    """Paths (globs) a hostPath PersistentVolume may use; empty forbids hostPath PVs."""
    allowLocal: bool = False
    """Whether ``local`` PersistentVolumes (one node's disk, from a local static provisioner) are allowed."""
    denyProtectedDelete: bool = False
    """Deny deleting a PersistentVolume of a protected class whose reclaim policy is Retain."""


class StorageClassRules(settings.StrictModel):
    allowedProvisioners: tuple[str, ...] = ()
    """Provisioners (globs) a StorageClass may name; empty allows any."""
    allowVolumeExpansion: bool | None = None
    """Required ``allowVolumeExpansion`` for classes without their own setting; ``None`` allows either."""


class PodVolumeRules(settings.StrictModel):
    allowedTypes: tuple[str, ...] = ()
    """Volume types pods may use (``configMap``, ``secret``, ``persistentVolumeClaim``...); empty: any."""
    maxMemorySizeLimit: Quantity | None = None
    """Largest ``sizeLimit`` of an ``emptyDir`` with ``medium: Memory`` (charged to the pod's memory)."""


class StorageSettings(settings.GroupSettings):
    """The ``storage:`` section of policy files."""

    defaultStorageClass: str | None = None
    """The class a claim without ``storageClassName`` gets; such claims then count as that class.
    Not applied to claim templates: their claims get the cluster's default when they are created."""
    maxSize: Quantity | None = None
    """Largest ``requests.storage`` of any claim."""
    classes: dict[str, ClassRules] = {}
    namespaces: tuple[NamespaceRules, ...] = ()
    claims: ClaimRules = ClaimRules()
    persistentVolumes: PersistentVolumeRules = PersistentVolumeRules()
    storageClasses: StorageClassRules = StorageClassRules()
    podVolumes: PodVolumeRules = PodVolumeRules()


