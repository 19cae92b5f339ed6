"""Storage rules: claims (and StatefulSet claim templates), PersistentVolumes, StorageClasses and pod volumes.

Each rule is its own policy id (``storage.<rule>``). Sizes are compared exactly
(:mod:`webhook.quantity`), so ``1024Gi`` equals ``1Ti`` and ``1.1T`` is more than ``1Ti``.

Kubernetes behaviour these rules follow:

* a claim's class is the ``volume.beta.kubernetes.io/storage-class`` annotation if present, else
  ``spec.storageClassName`` (``GetPersistentVolumeClaimClass``); ``""`` explicitly means "no class"
  (static binding), while a missing class means the cluster default. The built-in
  ``DefaultStorageClass`` admission plugin runs before webhooks, so in a cluster with a default
  class a claim arrives here with it filled in; ``defaultStorageClass`` covers clusters without one;
* that plugin fills in PersistentVolumeClaims only, never a StatefulSet's ``volumeClaimTemplates``:
  a template without a class gets whatever default the cluster has when the StatefulSet controller
  creates its claims, and those claims are judged here as claims. So a template is not required to
  name a class (only ``""``, which opts out of the default, is flagged), and rules that depend on
  the class (allowed classes, a class's maximum size and access modes) apply only to templates
  that name one;
* since 1.28 the PV controller retroactively gives class-less claims the default class: an UPDATE
  from no class to a class is allowed, any other class change is not;
* the API server lets a claim's request go down only to recover from a failed expansion, never
  below ``status.capacity`` (``RecoverVolumeExpansionFailure``); ``allowExpansionRecovery`` keeps
  that door open, otherwise a claim may only grow;
* DELETE carries the object in ``oldObject``; the engine passes it as the target.

Object rules report on UPDATE only findings the old object did not have (so removing a finalizer
from a claim that predates a policy is never blocked); pod rules skip updates that leave the pod
spec unchanged, like Pod Security admission.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

from webhook import quantity
from webhook.policy import model, registry, scope
from webhook.validators import updates, wording
from webhook.validators.storage_settings import NamespaceRules, StorageSettings

GROUP = "storage"
CLAIM_KINDS = ("PersistentVolumeClaim", "StatefulSet")
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


registry.group(
    GROUP,
    key="storage",
    chain="validating",
    settings_model=StorageSettings,
    order=40,
    description="Storage classes, sizes and access modes of claims; PersistentVolume sources and "
    "reclaim policies; StorageClass settings; pod volume types.",
)

Check = Callable[[Any, model.ReviewContext, StorageSettings], list[model.Violation]]


def _object_check(
    policy_id: str, *, kinds: Iterable[str], order: int, operations: Iterable[str] = ("CREATE", "UPDATE")
) -> Callable[[Check], Check]:
    return updates.object_check(GROUP, policy_id, kinds=kinds, order=order, operations=operations)


def _pod_check(policy_id: str, *, order: int) -> Callable[[Check], Check]:
    return updates.pod_check(GROUP, policy_id, order=order)


def _name(obj: dict[str, Any], ctx: model.ReviewContext) -> str:
    meta = wording.as_dict(obj.get("metadata"))
    name = meta.get("name")
    if isinstance(name, str) and name:
        return wording.quote(name)
    generate = meta.get("generateName")
    if isinstance(generate, str) and generate:
        return wording.quote(generate + "*")
    return wording.quote(ctx.name) if ctx.name else "(unnamed)"


def _size_text(value: Any) -> str | None:
    """A quantity field as text (the API server accepts JSON numbers too), or ``None`` if absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else None


# --- claims and claim templates -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A PersistentVolumeClaim, or one ``volumeClaimTemplates`` entry of a StatefulSet."""

    subject: str
    """``PersistentVolumeClaim "data"`` or ``StatefulSet "db" claim template "data"``."""
    prefix: str
    """Path of the claim inside the submitted object (``""`` or ``spec.volumeClaimTemplates[0].``)."""
    spec: dict[str, Any]
    metadata: dict[str, Any]
    is_template: bool = False
    """A StatefulSet claim template: no class yet means "the cluster default when claims are made"."""

    @property
    def declared_class(self) -> str | None:
        """The class as written: the beta annotation wins over ``spec.storageClassName``."""
        annotation = wording.as_dict(self.metadata.get("annotations")).get(BETA_CLASS_ANNOTATION)
        if isinstance(annotation, str):
            return annotation
        value = self.spec.get("storageClassName")
        return value if isinstance(value, str) else None

    @property
    def class_path(self) -> str:
        annotations = wording.as_dict(self.metadata.get("annotations"))
        if isinstance(annotations.get(BETA_CLASS_ANNOTATION), str):
            return f"{self.prefix}metadata.annotations[{BETA_CLASS_ANNOTATION}]"
        return f"{self.prefix}spec.storageClassName"


def _claims(obj: Any, ctx: model.ReviewContext) -> list[Claim]:
    if not isinstance(obj, dict):
        return []
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ctx.kind
    if kind == "PersistentVolumeClaim":
        return [Claim(f"PersistentVolumeClaim {_name(obj, ctx)}", "", wording.as_dict(obj.get("spec")),
                      wording.as_dict(obj.get("metadata")))]
    if kind != "StatefulSet":
        return []
    templates = wording.as_dict(obj.get("spec")).get("volumeClaimTemplates")
    if not isinstance(templates, list):
        return []
    found = []
    for index, template in enumerate(templates):
        if not isinstance(template, dict):
            continue
        meta = wording.as_dict(template.get("metadata"))
        claim_name = meta.get("name")
        shown = wording.quote(claim_name) if isinstance(claim_name, str) and claim_name else f"#{index}"
        found.append(Claim(
            f"StatefulSet {_name(obj, ctx)} claim template {shown}",
            f"spec.volumeClaimTemplates[{index}].",
            wording.as_dict(template.get("spec")),
            meta,
            is_template=True,
        ))
    return found


def _effective_class(claim: Claim, params: StorageSettings) -> str | None:
    """The class the claim is judged as; ``None`` when unknown (class rules then do not apply)."""
    declared = claim.declared_class
    if declared is not None or claim.is_template:
        # A template's claims get the cluster's default class at creation, which we cannot know here.
        return declared
    return params.defaultStorageClass


def _namespace_rules(namespace: str, params: StorageSettings) -> NamespaceRules | None:
    for rules in params.namespaces:
        if scope.glob_match(namespace, rules.namespaces):
            return rules
    return None


@_object_check("storageClassRequired", kinds=CLAIM_KINDS, order=10)
def storage_class_required(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """Claims must name a storage class (a configured defaultStorageClass counts); claim templates
    must not opt out of the default class with ``""``."""
    found = []
    for claim in _claims(obj, ctx):
        declared = claim.declared_class
        path = claim.class_path
        if declared is None and params.defaultStorageClass is None and not claim.is_template:
            found.append(model.Violation(
                "storageClassName not set",
                f"{claim.subject} sets no {path}; a storage class is required",
                path=path,
            ))
        elif declared == "":
            found.append(model.Violation(
                "storageClassName empty",
                f'{claim.subject} sets {path} to "" (no class: bind to a pre-created volume); '
                "a storage class is required",
                path=path, value="",
            ))
    return found


@_object_check("allowedClasses", kinds=CLAIM_KINDS, order=20)
def allowed_classes(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """Claims must use a class allowed in their namespace."""
    namespace = model.namespace_of(obj, ctx)
    rules = _namespace_rules(namespace, params)
    if rules is None or not rules.allowedClasses:
        return []
    found = []
    for claim in _claims(obj, ctx):
        storage_class = _effective_class(claim, params)
        if storage_class is None or scope.glob_match(storage_class, rules.allowedClasses):
            continue  # a missing class is storage.storageClassRequired's finding
        found.append(model.Violation(
            "storage class not allowed",
            f"{claim.subject} uses class {wording.quote(storage_class)} in {claim.class_path}; namespace "
            f"{wording.quote(namespace)} allows classes {wording.quote_all(rules.allowedClasses)}",
            path=claim.class_path, value=storage_class, allowed=list(rules.allowedClasses),
        ))
    return found


@_object_check("maxSize", kinds=CLAIM_KINDS, order=30)
def max_size(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """Claims must not request more storage than their class, namespace and the global maximum allow."""
    namespace = model.namespace_of(obj, ctx)
    namespace_rules = _namespace_rules(namespace, params)
    found = []
    for claim in _claims(obj, ctx):
        path = f"{claim.prefix}spec.resources.requests.storage"
        text = _size_text(wording.as_dict(wording.as_dict(claim.spec.get("resources")).get("requests")).get("storage"))
        if text is None:
            continue  # the API server requires it; nothing to compare
        try:
            requested = quantity.parse(text)
        except ValueError as exc:
            found.append(model.Violation("invalid storage request", f"{claim.subject}: {path}: {exc}",
                                         path=path, value=text))
            continue
        storage_class = _effective_class(claim, params)
        # Most specific first, so on a tie the message names the class, then the namespace.
        limits: list[tuple[Fraction, str, str]] = []
        class_rules = params.classes.get(storage_class) if storage_class is not None else None
        if class_rules is not None and class_rules.maxSize is not None:
            limits.append((quantity.parse(class_rules.maxSize), class_rules.maxSize,
                           f"the maximum for class {wording.quote(storage_class)} is {class_rules.maxSize}"))
        if namespace_rules is not None and namespace_rules.maxSize is not None:
            limits.append((quantity.parse(namespace_rules.maxSize), namespace_rules.maxSize,
                           f"the maximum in namespace {wording.quote(namespace)} is {namespace_rules.maxSize}"))
        if params.maxSize is not None:
            limits.append(
                (quantity.parse(params.maxSize), params.maxSize, f"the maximum is {params.maxSize}")
            )
        if not limits:
            continue
        limit, limit_text, why = min(limits, key=lambda item: item[0])
        if requested > limit:
            found.append(model.Violation(
                "storage request too large",
                f"{claim.subject} requests {text} in {path}; {why}",
                path=path, value=text, allowed=limit_text,
            ))
    return found


@_object_check("accessModes", kinds=CLAIM_KINDS, order=40)
def access_modes(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """Claims may only ask for the access modes their class allows."""
    found = []
    for claim in _claims(obj, ctx):
        storage_class = _effective_class(claim, params)
        class_rules = params.classes.get(storage_class) if storage_class is not None else None
        if class_rules is None or not class_rules.accessModes:
            continue
        modes = claim.spec.get("accessModes")
        for index, mode in enumerate(modes if isinstance(modes, list) else []):
            if mode in class_rules.accessModes:
                continue
            path = f"{claim.prefix}spec.accessModes[{index}]"
            found.append(model.Violation(
                "access mode not allowed",
                f"{claim.subject} asks for {mode} in {path}; class {wording.quote(storage_class)} allows "
                f"{', '.join(class_rules.accessModes)}",
                path=path, value=mode, allowed=list(class_rules.accessModes),
            ))
    return found


@_object_check("claimUpdate", kinds=("PersistentVolumeClaim",), order=50, operations=("UPDATE",))
def claim_update(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """On UPDATE a claim must not shrink or change its storage class."""
    old_claims = _claims(ctx.old_object, ctx)
    new_claims = _claims(obj, ctx)
    if not old_claims or not new_claims:
        return []
    old, new = old_claims[0], new_claims[0]
    found = []
    before, after = old.declared_class, new.declared_class
    if before is not None and after != before:
        found.append(model.Violation(
            "storage class changed",
            f"{new.subject} changes {new.class_path} from {wording.quote(before)} to {wording.quote(after or '')}; "
            "the class of a claim cannot change",
            path=new.class_path, value=after, allowed=before,
        ))
    path = "spec.resources.requests.storage"
    old_text = _size_text(wording.as_dict(wording.as_dict(old.spec.get("resources")).get("requests")).get("storage"))
    new_text = _size_text(wording.as_dict(wording.as_dict(new.spec.get("resources")).get("requests")).get("storage"))
    old_size, new_size = quantity.lenient(old_text), quantity.lenient(new_text)
    if old_size is not None and new_size is not None and new_size < old_size:
        status = wording.as_dict(wording.as_dict(ctx.old_object).get("status"))
        capacity_text = _size_text(wording.as_dict(status.get("capacity")).get("storage"))
        capacity = quantity.lenient(capacity_text)
        recovering = params.claims.allowExpansionRecovery and capacity is not None and new_size >= capacity
        if not recovering:
            floor = (f"; it may go down only to recover from a failed expansion, not below the current "
                     f"capacity {capacity_text}" if params.claims.allowExpansionRecovery and capacity_text
                     else "; claims may only grow")
            found.append(model.Violation(
                "storage request shrunk",
                f"{new.subject} lowers {path} from {old_text} to {new_text}{floor}",
                path=path, value=new_text, allowed=old_text,
            ))
    return found


# --- PersistentVolumes --------------------------------------------------------------------------


def _pv_class(pv: dict[str, Any]) -> str | None:
    annotation = wording.as_dict(wording.as_dict(pv.get("metadata")).get("annotations")).get(BETA_CLASS_ANNOTATION)
    if isinstance(annotation, str):
        return annotation
    value = wording.as_dict(pv.get("spec")).get("storageClassName")
    return value if isinstance(value, str) else None


def _protected(storage_class: str | None, params: StorageSettings) -> bool:
    rules = params.classes.get(storage_class) if storage_class is not None else None
    return rules is not None and rules.protected


def _reclaim_policy(pv: dict[str, Any]) -> str:
    # The API server defaults a PersistentVolume's reclaim policy to Retain.
    value = wording.as_dict(pv.get("spec")).get("persistentVolumeReclaimPolicy")
    return value if isinstance(value, str) and value else "Retain"


@_object_check("pvHostPath", kinds=("PersistentVolume",), order=60)
def pv_host_path(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """PersistentVolumes must not use hostPath (outside the allowed paths)."""
    if not isinstance(obj, dict):
        return []
    host_path = wording.as_dict(obj.get("spec")).get("hostPath")
    if host_path is None:
        return []
    value = wording.as_dict(host_path).get("path")
    allowed = params.persistentVolumes.allowedHostPaths
    if isinstance(value, str) and allowed and scope.glob_match(value, allowed):
        return []
    why = (f"hostPath volumes are allowed only at {wording.quote_all(allowed)}" if allowed
           else "hostPath PersistentVolumes are not allowed (they expose the node's filesystem to any pod "
           "bound to them)")
    return [model.Violation(
        "hostPath PersistentVolume",
        f"PersistentVolume {_name(obj, ctx)} uses hostPath {wording.quote(value or '')} in spec.hostPath.path; "
        f"{why}",
        path="spec.hostPath.path", value=value, allowed=list(allowed),
    )]


@_object_check("pvLocal", kinds=("PersistentVolume",), order=70)
def pv_local(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """PersistentVolumes must not use local volumes unless allowed."""
    if not isinstance(obj, dict) or params.persistentVolumes.allowLocal:
        return []
    local = wording.as_dict(obj.get("spec")).get("local")
    if local is None:
        return []
    value = wording.as_dict(local).get("path")
    return [model.Violation(
        "local PersistentVolume",
        f"PersistentVolume {_name(obj, ctx)} uses local volume {wording.quote(value or '')} in spec.local.path; "
        "local PersistentVolumes are not allowed (storage.persistentVolumes.allowLocal is false)",
        path="spec.local.path", value=value,
    )]


@_object_check("pvReclaimPolicy", kinds=("PersistentVolume",), order=80)
def pv_reclaim_policy(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """PersistentVolumes of protected classes must have persistentVolumeReclaimPolicy Retain."""
    if not isinstance(obj, dict):
        return []
    storage_class = _pv_class(obj)
    policy = _reclaim_policy(obj)
    if not _protected(storage_class, params) or policy == "Retain":
        return []
    path = "spec.persistentVolumeReclaimPolicy"
    return [model.Violation(
        "reclaim policy not Retain",
        f"PersistentVolume {_name(obj, ctx)} of protected class {wording.quote(storage_class)} has {path} "
        f"{wording.quote(policy)}; protected classes require \"Retain\"",
        path=path, value=policy, allowed="Retain",
    )]


@_object_check("pvDelete", kinds=("PersistentVolume",), order=90, operations=("DELETE",))
def pv_delete(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """Deleting a retained PersistentVolume of a protected class is denied when configured."""
    # On DELETE the engine passes oldObject, the volume being deleted.
    if not isinstance(obj, dict) or not params.persistentVolumes.denyProtectedDelete:
        return []
    storage_class = _pv_class(obj)
    if not _protected(storage_class, params) or _reclaim_policy(obj) != "Retain":
        return []
    return [model.Violation(
        "protected PersistentVolume",
        f"PersistentVolume {_name(obj, ctx)} of protected class {wording.quote(storage_class)} retains its data "
        "(spec.persistentVolumeReclaimPolicy \"Retain\"); deleting protected volumes is not allowed "
        "(storage.persistentVolumes.denyProtectedDelete)",
        path="spec.persistentVolumeReclaimPolicy", value="Retain",
    )]


# --- StorageClasses -----------------------------------------------------------------------------


def _class_name(obj: dict[str, Any]) -> str | None:
    name = wording.as_dict(obj.get("metadata")).get("name")
    return name if isinstance(name, str) else None


@_object_check("provisioners", kinds=("StorageClass",), order=100)
def provisioners(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """StorageClasses must name an allowed provisioner."""
    allowed = params.storageClasses.allowedProvisioners
    if not isinstance(obj, dict) or not allowed:
        return []
    value = obj.get("provisioner")
    if isinstance(value, str) and scope.glob_match(value, allowed):
        return []
    return [model.Violation(
        "provisioner not allowed",
        f"StorageClass {_name(obj, ctx)} uses provisioner {wording.quote(value if value is not None else '')} in "
        f"provisioner; allowed: {wording.quote_all(allowed)}",
        path="provisioner", value=value, allowed=list(allowed),
    )]


@_object_check("protectedClasses", kinds=("StorageClass",), order=110)
def protected_classes(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """Protected StorageClasses must use reclaimPolicy Retain and volumeBindingMode WaitForFirstConsumer."""
    if not isinstance(obj, dict):
        return []
    name = _class_name(obj)
    if not _protected(name, params):
        return []
    found = []
    # API defaults: reclaimPolicy Delete, volumeBindingMode Immediate.
    for field, default, wanted, why in (
        ("reclaimPolicy", "Delete", "Retain", "the volume must outlive its claim"),
        ("volumeBindingMode", "Immediate", "WaitForFirstConsumer",
         "the volume must be created where its first pod is scheduled"),
    ):
        value = obj.get(field)
        value = value if isinstance(value, str) and value else default
        if value == wanted:
            continue
        found.append(model.Violation(
            f"{field} not {wanted}",
            f"StorageClass {_name(obj, ctx)} is protected and has {field} {wording.quote(value)}; it must be "
            f"{wording.quote(wanted)} ({why})",
            path=field, value=value, allowed=wanted,
        ))
    return found


@_object_check("volumeExpansion", kinds=("StorageClass",), order=120)
def volume_expansion(
    obj: Any, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """StorageClasses must set allowVolumeExpansion as the policy requires (per class or for all)."""
    if not isinstance(obj, dict):
        return []
    name = _class_name(obj)
    class_rules = params.classes.get(name) if name is not None else None
    wanted = class_rules.allowVolumeExpansion if class_rules is not None else None
    if wanted is None:
        wanted = params.storageClasses.allowVolumeExpansion
    if wanted is None:
        return []
    actual = obj.get("allowVolumeExpansion") is True  # unset means false
    if actual == wanted:
        return []
    own = class_rules is not None and class_rules.allowVolumeExpansion is not None
    where = f"for class {wording.quote(name)}" if own else "for storage classes"
    return [model.Violation(
        "allowVolumeExpansion not allowed" if actual else "allowVolumeExpansion required",
        f"StorageClass {_name(obj, ctx)} has allowVolumeExpansion={str(actual).lower()}; the policy requires "
        f"allowVolumeExpansion={str(wanted).lower()} {where}",
        path="allowVolumeExpansion", value=actual, allowed=wanted,
    )]


# --- pods and pod templates ---------------------------------------------------------------------


def _pod_subject(pod: model.PodTarget, ctx: model.ReviewContext) -> str:
    return f"{pod.kind} {_name(pod.obj, ctx)}"


def _volumes(pod: model.PodTarget) -> list[tuple[int, dict[str, Any]]]:
    volumes = pod.spec.get("volumes")
    if not isinstance(volumes, list):
        return []
    return [(index, volume) for index, volume in enumerate(volumes) if isinstance(volume, dict)]


def _volume_types(volume: dict[str, Any]) -> list[str]:
    # A volume with no source is an emptyDir (the API server's defaulting).
    return [key for key in volume if key != "name"] or ["emptyDir"]


@_pod_check("volumeTypes", order=130)
def volume_types(
    pod: model.PodTarget, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """Pods may only use the allowed volume types."""
    allowed = params.podVolumes.allowedTypes
    if not allowed:
        return []
    found = []
    for index, volume in _volumes(pod):
        for volume_type in _volume_types(volume):
            if volume_type in allowed:
                continue
            path = f"{pod.spec_path}.volumes[{index}].{volume_type}"
            found.append(model.Violation(
                "volume type not allowed",
                f"{_pod_subject(pod, ctx)} volume {wording.quote(volume.get('name', ''))} uses {volume_type} "
                f"in {path}; "
                f"allowed volume types: {', '.join(allowed)}",
                path=path, value=volume_type, allowed=list(allowed),
            ))
    return found


@_pod_check("memoryEmptyDir", order=140)
def memory_empty_dir(
    pod: model.PodTarget, ctx: model.ReviewContext, params: StorageSettings
) -> list[model.Violation]:
    """A memory-backed emptyDir must set a sizeLimit (within the configured maximum)."""
    maximum = params.podVolumes.maxMemorySizeLimit
    found = []
    for index, volume in _volumes(pod):
        empty_dir = volume.get("emptyDir")
        if not isinstance(empty_dir, dict) or empty_dir.get("medium") != "Memory":
            continue
        where = f"{_pod_subject(pod, ctx)} volume {wording.quote(volume.get('name', ''))}"
        path = f"{pod.spec_path}.volumes[{index}].emptyDir.sizeLimit"
        text = _size_text(empty_dir.get("sizeLimit"))
        if text is None:
            limit = f" of at most {maximum}" if maximum else ""
            found.append(model.Violation(
                "memory emptyDir without sizeLimit",
                f"{where} sets emptyDir.medium=Memory without {path}; a tmpfs volume is charged to the pod's "
                f"memory and needs a sizeLimit{limit}",
                path=path, allowed=maximum,
            ))
            continue
        try:
            size = quantity.parse(text)
        except ValueError as exc:
            found.append(
                model.Violation("invalid sizeLimit", f"{where}: {path}: {exc}", path=path, value=text)
            )
            continue
        if maximum is not None and size > quantity.parse(maximum):
            found.append(model.Violation(
                "memory emptyDir too large",
                f"{where} sets {path} to {text}; the maximum for a memory-backed emptyDir is {maximum}",
                path=path, value=text, allowed=maximum,
            ))
    return found
