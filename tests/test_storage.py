"""Storage rules: claims and claim templates, PersistentVolumes, StorageClasses and pod volumes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from tests import conftest
from webhook import engine, review
from webhook.policy import files, model, registry, workloads
from webhook.validators import storage, storage_settings

REPO = Path(__file__).resolve().parents[1]
POLICIES = registry.REGISTRY.in_group("storage")
SETTINGS = storage.StorageSettings.model_validate({
    "maxSize": "1Ti",
    "classes": {
        "fast": {"maxSize": "500Gi", "accessModes": ["ReadWriteOnce", "ReadWriteOncePod"]},
        "gold": {"protected": True, "allowVolumeExpansion": True},
        "single": {"accessModes": ["ReadWriteOncePod"]},
    },
    "namespaces": [
        {"namespaces": ["team-*"], "allowedClasses": ["standard", "fast"], "maxSize": "200Gi"},
        {"namespaces": ["*"], "allowedClasses": ["*"]},
    ],
    "persistentVolumes": {"allowedHostPaths": ["/mnt/disks/*"], "denyProtectedDelete": True},
    "storageClasses": {"allowedProvisioners": ["ebs.csi.aws.com", "*.csi.example.com"]},
    "podVolumes": {"allowedTypes": ["configMap", "secret", "emptyDir", "persistentVolumeClaim"],
                   "maxMemorySizeLimit": "1Gi"},
})


def pvc(size: Any = "10Gi", *, storage_class: Any = "standard", modes: Any = ("ReadWriteOnce",),
        name: str = "data", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **extra}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def statefulset(*claims: dict[str, Any]) -> dict[str, Any]:
    templates = [{"metadata": c["metadata"], "spec": c["spec"]} for c in claims]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"volumeClaimTemplates": templates, "template": {"spec": {"containers": []}}}}


def pv(name: str = "pv1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def storage_class(name: str = "gold", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name}, **fields}


def pod(*volumes: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app", "image": "x:1"}], "volumes": list(volumes)}}


def run(fn: registry.CheckFn, obj: dict[str, Any], *, settings: storage.StorageSettings = SETTINGS,
        **ctx_fields: Any) -> list[tuple[str, str, str]]:
    ctx_fields.setdefault("namespace", "team-a")
    ctx = model.ReviewContext(kind=obj["kind"], **ctx_fields)
    pod_rules = (storage.volume_types, storage.memory_empty_dir)
    target = workloads.pod_target(obj, obj["kind"]) if fn in pod_rules else obj
    return [(v.reason, v.detail, v.path) for v in fn(target, ctx, settings)]


def test_each_rule_is_its_own_policy() -> None:
    assert [(p.id, sorted(p.operations)) for p in POLICIES] == [
        ("storage.storageClassRequired", ["CREATE", "UPDATE"]),
        ("storage.allowedClasses", ["CREATE", "UPDATE"]),
        ("storage.maxSize", ["CREATE", "UPDATE"]),
        ("storage.accessModes", ["CREATE", "UPDATE"]),
        ("storage.claimUpdate", ["UPDATE"]),
        ("storage.pvHostPath", ["CREATE", "UPDATE"]),
        ("storage.pvLocal", ["CREATE", "UPDATE"]),
        ("storage.pvReclaimPolicy", ["CREATE", "UPDATE"]),
        ("storage.pvDelete", ["DELETE"]),
        ("storage.provisioners", ["CREATE", "UPDATE"]),
        ("storage.protectedClasses", ["CREATE", "UPDATE"]),
        ("storage.volumeExpansion", ["CREATE", "UPDATE"]),
        ("storage.volumeTypes", ["CREATE", "UPDATE"]),
        ("storage.memoryEmptyDir", ["CREATE", "UPDATE"]),
    ]
    assert registry.REGISTRY.policies["storage.maxSize"].kinds == {"PersistentVolumeClaim", "StatefulSet"}


CASES: list[tuple[str, registry.CheckFn, dict[str, Any], list[tuple[str, str, str]]]] = [
    # storage.storageClassRequired
    ("class set", storage.storage_class_required, pvc(), []),
    ("no class", storage.storage_class_required, pvc(storage_class=None), [(
        "storageClassName not set",
        'PersistentVolumeClaim "data" sets no spec.storageClassName; a storage class is required',
        "spec.storageClassName")]),
    ("empty class", storage.storage_class_required, pvc(storage_class=""), [(
        "storageClassName empty",
        'PersistentVolumeClaim "data" sets spec.storageClassName to "" (no class: bind to a pre-created '
        "volume); a storage class is required", "spec.storageClassName")]),
    ("beta annotation counts", storage.storage_class_required,
     {**pvc(storage_class=None),
      "metadata": {"name": "data", "annotations": {storage.BETA_CLASS_ANNOTATION: "x"}}},
     []),
    # The claims a template stamps out get the default class (DefaultStorageClass admission) and are
    # judged as claims then; only an explicit "" opts a template out of the default.
    ("claim template without class", storage.storage_class_required,
     statefulset(pvc(), pvc(storage_class=None, name="logs")), []),
    ("claim template with empty class", storage.storage_class_required,
     statefulset(pvc(), pvc(storage_class="", name="logs")), [(
         "storageClassName empty",
         'StatefulSet "db" claim template "logs" sets spec.volumeClaimTemplates[1].spec.storageClassName to '
         '"" (no class: bind to a pre-created volume); a storage class is required',
         "spec.volumeClaimTemplates[1].spec.storageClassName")]),
    # storage.allowedClasses
    ("allowed class", storage.allowed_classes, pvc(storage_class="fast"), []),
    ("class not allowed in namespace", storage.allowed_classes, pvc(storage_class="gold"), [(
        "storage class not allowed",
        'PersistentVolumeClaim "data" uses class "gold" in spec.storageClassName; namespace "team-a" allows '
        'classes "standard", "fast"', "spec.storageClassName")]),
    # storage.maxSize
    ("within every maximum", storage.max_size, pvc("200Gi"), []),
    ("namespace maximum", storage.max_size, pvc("201Gi"), [(
        "storage request too large",
        'PersistentVolumeClaim "data" requests 201Gi in spec.resources.requests.storage; the maximum in '
        'namespace "team-a" is 200Gi', "spec.resources.requests.storage")]),
    ("invalid request", storage.max_size, pvc("1.5.2Gi"), [(
        "invalid storage request",
        'PersistentVolumeClaim "data": spec.resources.requests.storage: invalid quantity "1.5.2Gi": more '
        "than one decimal point", "spec.resources.requests.storage")]),
    ("a JSON number is a quantity", storage.max_size, pvc(300 * 2**30), [(
        "storage request too large",
        'PersistentVolumeClaim "data" requests 322122547200 in spec.resources.requests.storage; the maximum '
        'in namespace "team-a" is 200Gi', "spec.resources.requests.storage")]),
    ("claim template too large", storage.max_size, statefulset(pvc("100Gi"), pvc("0.25Ti", name="logs")), [(
        "storage request too large",
        'StatefulSet "db" claim template "logs" requests 0.25Ti in '
        'spec.volumeClaimTemplates[1].spec.resources.requests.storage; the maximum in namespace "team-a" is '
        "200Gi",
        "spec.volumeClaimTemplates[1].spec.resources.requests.storage")]),
    # storage.accessModes
    ("allowed modes", storage.access_modes, pvc(storage_class="fast", modes=["ReadWriteOncePod"]), []),
    ("no ReadWriteMany on block", storage.access_modes,
     pvc(storage_class="fast", modes=["ReadWriteOnce", "ReadWriteMany"]), [(
         "access mode not allowed",
         'PersistentVolumeClaim "data" asks for ReadWriteMany in spec.accessModes[1]; class "fast" allows '
         "ReadWriteOnce, ReadWriteOncePod", "spec.accessModes[1]")]),
    ("single writer class", storage.access_modes, pvc(storage_class="single"), [(
        "access mode not allowed",
        'PersistentVolumeClaim "data" asks for ReadWriteOnce in spec.accessModes[0]; class "single" allows '
        "ReadWriteOncePod", "spec.accessModes[0]")]),
    ("classes without rules allow any mode", storage.access_modes, pvc(modes=["ReadWriteMany"]), []),
    # storage.pvHostPath / pvLocal / pvReclaimPolicy
    ("hostPath outside allowed paths", storage.pv_host_path, pv(hostPath={"path": "/etc"}), [(
        "hostPath PersistentVolume",
        'PersistentVolume "pv1" uses hostPath "/etc" in spec.hostPath.path; hostPath volumes are allowed '
        'only at "/mnt/disks/*"', "spec.hostPath.path")]),
    ("hostPath under allowed path", storage.pv_host_path, pv(hostPath={"path": "/mnt/disks/ssd1"}), []),
    ("nfs is not hostPath", storage.pv_host_path, pv(nfs={"server": "nfs", "path": "/"}), []),
    ("local volume", storage.pv_local, pv(local={"path": "/mnt/disks/ssd1"}), [(
        "local PersistentVolume",
        'PersistentVolume "pv1" uses local volume "/mnt/disks/ssd1" in spec.local.path; local '
        "PersistentVolumes are not allowed (storage.persistentVolumes.allowLocal is "
        "false)", "spec.local.path")]),
    ("protected PV deletes on release", storage.pv_reclaim_policy,
     pv(storageClassName="gold", persistentVolumeReclaimPolicy="Delete"), [(
         "reclaim policy not Retain",
         'PersistentVolume "pv1" of protected class "gold" has spec.persistentVolumeReclaimPolicy "Delete"; '
         'protected classes require "Retain"', "spec.persistentVolumeReclaimPolicy")]),
    ("protected PV defaults to Retain", storage.pv_reclaim_policy, pv(storageClassName="gold"), []),
    ("unprotected PV may Delete", storage.pv_reclaim_policy,
     pv(storageClassName="fast", persistentVolumeReclaimPolicy="Delete"), []),
    # storage.provisioners / protectedClasses / volumeExpansion
    ("allowed provisioner", storage.provisioners, storage_class(provisioner="disk.csi.example.com"), []),
    ("provisioner not allowed", storage.provisioners,
     storage_class(provisioner="kubernetes.io/no-provisioner"), [(
        "provisioner not allowed",
        'StorageClass "gold" uses provisioner "kubernetes.io/no-provisioner" in provisioner; allowed: '
        '"ebs.csi.aws.com", "*.csi.example.com"', "provisioner")]),
    ("protected class with API defaults", storage.protected_classes, storage_class(provisioner="x"), [
        ("reclaimPolicy not Retain",
         'StorageClass "gold" is protected and has reclaimPolicy "Delete"; it must be "Retain" (the volume '
         "must outlive its claim)", "reclaimPolicy"),
        ("volumeBindingMode not WaitForFirstConsumer",
         'StorageClass "gold" is protected and has volumeBindingMode "Immediate"; it must be '
         '"WaitForFirstConsumer" (the volume must be created where its first pod is '
         "scheduled)", "volumeBindingMode"),
    ]),
    ("protected class done right", storage.protected_classes,
     storage_class(reclaimPolicy="Retain", volumeBindingMode="WaitForFirstConsumer"), []),
    ("expansion required", storage.volume_expansion, storage_class(), [(
        "allowVolumeExpansion required",
        'StorageClass "gold" has allowVolumeExpansion=false; the policy requires allowVolumeExpansion=true '
        'for class "gold"', "allowVolumeExpansion")]),
    ("expansion set", storage.volume_expansion, storage_class(allowVolumeExpansion=True), []),
    ("no expansion policy for other classes", storage.volume_expansion, storage_class("fast"), []),
    # storage.volumeTypes / memoryEmptyDir
    ("allowed volume types", storage.volume_types,
     pod({"name": "c", "configMap": {"name": "c"}}, {"name": "scratch"}), []),
    ("hostPath in a pod", storage.volume_types,
     pod({"name": "c", "configMap": {}}, {"name": "h", "hostPath": {}}), [(
        "volume type not allowed",
        'Pod "web" volume "h" uses hostPath in spec.volumes[1].hostPath; allowed volume types: configMap, '
        "secret, emptyDir, persistentVolumeClaim", "spec.volumes[1].hostPath")]),
    ("memory emptyDir without sizeLimit", storage.memory_empty_dir,
     pod({"name": "tmp", "emptyDir": {"medium": "Memory"}}), [(
         "memory emptyDir without sizeLimit",
         'Pod "web" volume "tmp" sets emptyDir.medium=Memory without spec.volumes[0].emptyDir.sizeLimit; a '
         "tmpfs volume is charged to the pod's memory and needs a sizeLimit of at most 1Gi",
         "spec.volumes[0].emptyDir.sizeLimit")]),
    ("memory emptyDir too large", storage.memory_empty_dir,
     pod({"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1.5Gi"}}), [(
         "memory emptyDir too large",
         'Pod "web" volume "tmp" sets spec.volumes[0].emptyDir.sizeLimit to 1.5Gi; the maximum for a '
         "memory-backed emptyDir is 1Gi", "spec.volumes[0].emptyDir.sizeLimit")]),
    ("memory emptyDir at the maximum in other units", storage.memory_empty_dir,
     pod({"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1048576Ki"}}), []),
    ("disk emptyDir needs no limit", storage.memory_empty_dir, pod({"name": "tmp", "emptyDir": {}}), []),
]


@pytest.mark.parametrize(("name", "fn", "obj", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule(
    name: str, fn: registry.CheckFn, obj: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert run(fn, obj) == expected


@pytest.mark.parametrize(
    ("size", "storage_class", "namespace", "why"),
    [
        ("1100G", "standard", "other", "the maximum is 1Ti"),  # 1.1T > 1Ti: exact comparison
        ("1Ti", "standard", "other", None),
        ("1024Gi", "standard", "other", None),
        ("501Gi", "fast", "other", 'the maximum for class "fast" is 500Gi'),
        ("300Gi", "fast", "team-a", 'the maximum in namespace "team-a" is 200Gi'),  # the tightest limit wins
    ],
)
def test_the_tightest_maximum_applies(size: str, storage_class: str, namespace: str, why: str | None) -> None:
    found = run(storage.max_size, pvc(size, storage_class=storage_class), namespace=namespace)
    if why is None:
        assert found == []
    else:
        assert found == [("storage request too large",
                          f'PersistentVolumeClaim "data" requests {size} in spec.resources.requests.storage; '
                          f"{why}",
                          "spec.resources.requests.storage")]


def test_a_configured_default_class_counts_as_the_claims_class() -> None:
    settings = SETTINGS.model_copy(update={"defaultStorageClass": "fast"})
    claim = pvc("600Gi", storage_class=None)
    assert run(storage.storage_class_required, claim, settings=settings) == []
    assert run(storage.max_size, claim, settings=settings, namespace="other")[0][1].endswith(
        'the maximum for class "fast" is 500Gi')
    # An explicit "" is "no class", never the default.
    assert run(storage.storage_class_required, pvc(storage_class=""), settings=settings)[0][0] == (
        "storageClassName empty")


def test_a_claim_template_without_class_is_judged_only_on_what_does_not_depend_on_the_class() -> None:
    # Its claims get whatever default class the cluster has when they are created: the configured
    # defaultStorageClass is a guess for a template, so class rules wait for the claims themselves.
    settings = SETTINGS.model_copy(update={"defaultStorageClass": "gold"})
    template = statefulset(pvc("600Gi", storage_class=None, modes=["ReadWriteMany"]))
    assert run(storage.storage_class_required, template, settings=settings) == []
    assert run(storage.allowed_classes, template, settings=settings) == []
    single = SETTINGS.model_copy(update={"defaultStorageClass": "single"})
    assert run(storage.access_modes, template, settings=single) == []
    fast = SETTINGS.model_copy(update={"defaultStorageClass": "fast"})
    assert run(storage.max_size, template, settings=fast, namespace="other") == []
    # The namespace and global maximums do not depend on the class.
    assert run(storage.max_size, template, settings=fast) == [(
        "storage request too large",
        'StatefulSet "db" claim template "data" requests 600Gi in '
        'spec.volumeClaimTemplates[0].spec.resources.requests.storage; the maximum in namespace "team-a" is '
        "200Gi", "spec.volumeClaimTemplates[0].spec.resources.requests.storage")]
    # The same claim as a PVC does count as the configured default class.
    claim = pvc("600Gi", storage_class=None, modes=["ReadWriteMany"])
    assert [r for r, _, _ in run(storage.allowed_classes, claim, settings=settings)] == [
        "storage class not allowed"]
    assert [r for r, _, _ in run(storage.access_modes, claim, settings=single)] == ["access mode not allowed"]
    assert [d for _, d, _ in run(storage.max_size, claim, settings=fast, namespace="other")] == [
        'PersistentVolumeClaim "data" requests 600Gi in spec.resources.requests.storage; the maximum for '
        'class "fast" is 500Gi']


def test_a_claim_template_that_names_a_class_keeps_the_class_rules() -> None:
    template = statefulset(pvc("600Gi", storage_class="fast", modes=["ReadWriteMany"]),
                           pvc(storage_class="gold", name="logs"))
    assert run(storage.allowed_classes, template) == [(
        "storage class not allowed",
        'StatefulSet "db" claim template "logs" uses class "gold" in '
        'spec.volumeClaimTemplates[1].spec.storageClassName; namespace "team-a" allows classes "standard", '
        '"fast"', "spec.volumeClaimTemplates[1].spec.storageClassName")]
    assert run(storage.access_modes, template) == [(
        "access mode not allowed",
        'StatefulSet "db" claim template "data" asks for ReadWriteMany in '
        'spec.volumeClaimTemplates[0].spec.accessModes[0]; class "fast" allows ReadWriteOnce, '
        "ReadWriteOncePod", "spec.volumeClaimTemplates[0].spec.accessModes[0]")]
    assert run(storage.max_size, template, namespace="other") == [(
        "storage request too large",
        'StatefulSet "db" claim template "data" requests 600Gi in '
        'spec.volumeClaimTemplates[0].spec.resources.requests.storage; the maximum for class "fast" is '
        "500Gi", "spec.volumeClaimTemplates[0].spec.resources.requests.storage")]


def update(old: dict[str, Any], new: dict[str, Any], fn: registry.CheckFn = storage.claim_update,
           **kwargs: Any) -> list[tuple[str, str, str]]:
    return run(fn, new, operation="UPDATE", old_object=old, **kwargs)


def test_claims_may_grow_but_not_shrink() -> None:
    assert update(pvc("10Gi"), pvc("20Gi")) == []
    assert update(pvc("10Gi"), pvc("10240Mi")) == []
    assert update(pvc("10Gi"), pvc("5Gi")) == [(
        "storage request shrunk",
        'PersistentVolumeClaim "data" lowers spec.resources.requests.storage from 10Gi to 5Gi; claims may '
        "only grow",
        "spec.resources.requests.storage")]


def test_lowering_a_failed_expansion_stays_possible_down_to_the_capacity() -> None:
    old = {**pvc("100Gi"), "status": {"capacity": {"storage": "10Gi"}}}
    assert update(old, pvc("20Gi")) == []
    assert update(old, pvc("5Gi")) == [(
        "storage request shrunk",
        'PersistentVolumeClaim "data" lowers spec.resources.requests.storage from 100Gi to 5Gi; it may go '
        "down only to recover from a failed expansion, not below the current capacity 10Gi",
        "spec.resources.requests.storage")]
    strict = SETTINGS.model_copy(update={"claims": storage_settings.ClaimRules(allowExpansionRecovery=False)})
    assert update(old, pvc("20Gi"), settings=strict)[0][0] == "storage request shrunk"


def test_the_class_of_a_claim_cannot_change_except_retroactive_defaulting() -> None:
    assert update(pvc(storage_class="standard"), pvc(storage_class="fast")) == [(
        "storage class changed",
        'PersistentVolumeClaim "data" changes spec.storageClassName from "standard" to "fast"; the class of '
        "a claim cannot change", "spec.storageClassName")]
    # Since 1.28 the PV controller sets the default class on class-less claims.
    assert update(pvc(storage_class=None), pvc(storage_class="standard")) == []


def test_updates_report_only_new_findings() -> None:
    old = pvc("5Ti", storage_class=None)
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"a": "b"}
    assert update(old, relabelled, storage.max_size) == []
    assert update(old, relabelled, storage.storage_class_required) == []
    grown = pvc("6Ti", storage_class=None)
    assert [r for r, _, _ in update(old, grown, storage.max_size)] == ["storage request too large"]


def test_deleting_a_retained_protected_volume_is_denied_when_configured() -> None:
    volume = pv(storageClassName="gold", persistentVolumeReclaimPolicy="Retain")
    # On DELETE the engine passes oldObject as the target.
    assert run(storage.pv_delete, volume, operation="DELETE", old_object=volume) == [(
        "protected PersistentVolume",
        'PersistentVolume "pv1" of protected class "gold" retains its data '
        '(spec.persistentVolumeReclaimPolicy "Retain"); deleting protected volumes is not allowed '
        "(storage.persistentVolumes.denyProtectedDelete)",
        "spec.persistentVolumeReclaimPolicy")]
    assert run(storage.pv_delete, pv(storageClassName="fast"), operation="DELETE") == []
    relaxed = SETTINGS.model_copy(update={"persistentVolumes": storage_settings.PersistentVolumeRules()})
    assert run(storage.pv_delete, volume, operation="DELETE", settings=relaxed) == []


def test_rules_without_settings_allow_everything() -> None:
    bare = storage.StorageSettings()
    assert run(storage.max_size, pvc("100Pi"), settings=bare) == []
    assert run(storage.allowed_classes, pvc(storage_class="anything"), settings=bare) == []
    assert run(storage.provisioners, storage_class(provisioner="x"), settings=bare) == []
    assert run(storage.volume_types, pod({"name": "h", "hostPath": {"path": "/"}}), settings=bare) == []
    assert run(storage.pv_host_path, pv(hostPath={"path": "/"}), settings=bare)[0][1] == (
        'PersistentVolume "pv1" uses hostPath "/" in spec.hostPath.path; hostPath PersistentVolumes are not '
        "allowed (they expose the node's filesystem to any pod bound to them)")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"maxSize": "1Tb"}, 'invalid quantity "1Tb": unknown suffix "Tb"'),
        ({"classes": {"a": {"accessModes": ["ReadWriteSometimes"]}}}, "Input should be 'ReadWriteOnce'"),
        ({"namespaces": [{"namespaces": []}]}, "at least 1 item"),
        ({"podVolumes": {"maxMemorySizeLimit": " 1Gi"}}, "leading or trailing whitespace"),
    ],
)
def test_bad_settings_are_rejected_when_the_file_loads(section: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        storage.StorageSettings.model_validate(section)


def test_numbers_in_settings_are_quantities() -> None:
    assert storage.StorageSettings.model_validate({"maxSize": 1073741824}).maxSize == "1073741824"


MALFORMED: list[dict[str, Any]] = [
    {"kind": "PersistentVolumeClaim", "metadata": [], "spec": "big"},
    {"kind": "PersistentVolumeClaim", "spec": {"resources": {"requests": ["1Gi"]}, "accessModes": "RWO",
                                               "storageClassName": 5}},
    {"kind": "PersistentVolumeClaim", "spec": {"resources": {"requests": {"storage": True}}}},
    {"kind": "StatefulSet", "spec": {"volumeClaimTemplates": [None, "x", {"spec": None, "metadata": 1}]}},
    {"kind": "StatefulSet", "spec": {"volumeClaimTemplates": {"a": 1}}},
    {"kind": "PersistentVolume", "spec": {"hostPath": "/etc", "local": None, "storageClassName": ["gold"]}},
    {"kind": "PersistentVolume", "metadata": {"annotations": "x"}, "spec": None},
    {"kind": "StorageClass", "metadata": {"name": ["gold"]}, "provisioner": 5, "reclaimPolicy": None},
    {"kind": "Pod", "spec": {"volumes": [None, "x",
                                         {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": []}},
                                         {"name": "n", "emptyDir": "Memory"}]}},
    {"kind": "Pod", "spec": {"volumes": {"a": 1}}},
]


@pytest.mark.parametrize("obj", MALFORMED)
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
def test_malformed_objects_never_crash_any_rule(obj: dict[str, Any], operation: str) -> None:
    for policy in POLICIES:
        if obj["kind"] not in policy.kinds:
            continue
        target = workloads.pod_target(obj, obj["kind"]) if policy.pod_spec else obj
        if target is None:
            continue
        ctx = model.ReviewContext(
            kind=obj["kind"], operation=operation, namespace="team-a",  # type: ignore[arg-type]
            old_object=MALFORMED[0] if operation == "UPDATE" else obj,
        )
        policy.fn(target, ctx, SETTINGS)


def test_every_claim_and_volume_of_the_shared_manifests_is_judged_without_crashing() -> None:
    folder = conftest.shared("manifests")
    seen = 0
    for path in sorted(folder.rglob("*.y*ml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        for obj in documents:
            if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
                continue
            ctx = model.ReviewContext(kind=obj["kind"], namespace="team-a")
            pod_target = workloads.pod_target(obj, obj["kind"])
            for policy in POLICIES:
                if obj["kind"] in policy.kinds:
                    target = pod_target if policy.pod_spec else obj
                    if target is not None:
                        policy.fn(target, ctx, SETTINGS)
                        seen += 1
    assert seen > 100


def test_default_policy_file_validates_and_names_real_policies() -> None:
    document = yaml.safe_load((REPO / "policies" / "40-storage.yaml").read_text())
    section = {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}
    assert list(section) == ["storage"]
    settings = storage.StorageSettings.model_validate(section["storage"])
    # Its values (the 1Ti maximum, no default class, what is enforced) are choices users change:
    # policies/tests/storage-test.yaml pins them.
    assert set(settings.policies) <= {p.id for p in POLICIES}


# What the end-to-end tests rely on, so they do not move when policies/40-storage.yaml is edited.
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
storage:
  mode: warn
  policies:
    storage.storageClassRequired: {mode: enforce}
    storage.maxSize: {mode: enforce}
    storage.pvHostPath: {mode: enforce}
  maxSize: 1Ti
  defaultStorageClass: null
  podVolumes: {maxMemorySizeLimit: 1Gi}
"""


@pytest.fixture
def storage_policy(tmp_path: Path) -> Path:
    path = tmp_path / "40-storage.yaml"
    path.write_text(POLICY)
    return path


def evaluate(policy_set: engine.PolicySet, obj: dict[str, Any] | None, **kwargs: Any) -> review.Outcome:
    parsed = review.parse(conftest.admission_review(obj, **kwargs))
    return engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating")


def test_end_to_end_with_a_policy_file(storage_policy: Path) -> None:
    policy_set = engine.PolicySet(files.load([storage_policy]))
    outcome = evaluate(policy_set, pvc("2Ti", storage_class=None), namespace="team")
    assert not outcome.allowed
    assert outcome.message == (
        'storage.storageClassRequired: storageClassName not set (PersistentVolumeClaim "data" sets no '
        "spec.storageClassName; a storage class is required); storage.maxSize: storage request too large "
        '(PersistentVolumeClaim "data" requests 2Ti in spec.resources.requests.storage; the maximum is 1Ti)'
    )
    assert evaluate(policy_set, pvc("1Ti"), namespace="team").allowed
    outcome = evaluate(policy_set, pv(hostPath={"path": "/var/lib/data"}), namespace="")
    assert not outcome.allowed and outcome.message.startswith("storage.pvHostPath: hostPath "
                                                              "PersistentVolume (")
    # memory emptyDir warns; the pod is admitted.
    outcome = evaluate(policy_set, pod({"name": "tmp", "emptyDir": {"medium": "Memory"}}), namespace="team")
    assert outcome.allowed and outcome.warnings == [
        'storage.memoryEmptyDir: memory emptyDir without sizeLimit (Pod "web" volume "tmp" sets '
        "emptyDir.medium=Memory without spec.volumes[0].emptyDir.sizeLimit; a tmpfs volume is charged to "
        "the pod's memory and needs a sizeLimit of at most 1Gi)"
    ]
    # A StatefulSet's claim templates get the claim limits.
    outcome = evaluate(policy_set, statefulset(pvc("3Ti")), namespace="team")
    assert not outcome.allowed and "claim template \"data\" requests 3Ti" in outcome.message
    # A template without a class is admitted (its claims get the cluster's default class and are
    # judged as claims); one that opts out of the default with "" is not.
    assert evaluate(policy_set, statefulset(pvc(storage_class=None)), namespace="team").allowed
    outcome = evaluate(policy_set, statefulset(pvc(storage_class="")), namespace="team")
    assert not outcome.allowed
    assert outcome.message == (
        'storage.storageClassRequired: storageClassName empty (StatefulSet "db" claim template "data" sets '
        'spec.volumeClaimTemplates[0].spec.storageClassName to "" (no class: bind to a pre-created volume); '
        "a storage class is required)"
    )


def test_end_to_end_delete_of_a_protected_volume(tmp_path: Path, storage_policy: Path) -> None:
    (tmp_path / "90-protect.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\nstorage:\n"
        "  policies:\n    storage.pvDelete: {mode: enforce}\n"
        "  classes: {gold: {protected: true}}\n"
        "  persistentVolumes: {denyProtectedDelete: true}\n"
    )
    paths = [storage_policy, tmp_path / "90-protect.yaml"]
    policy_set = engine.PolicySet(files.load(paths))
    delete = {"operation": "DELETE", "kind": "PersistentVolume", "namespace": ""}
    volume = pv(storageClassName="gold", persistentVolumeReclaimPolicy="Retain")
    # DELETE carries the volume in oldObject; object is null.
    outcome = evaluate(policy_set, None, old=volume, **delete)
    assert not outcome.allowed
    assert outcome.message == (
        'storage.pvDelete: protected PersistentVolume (PersistentVolume "pv1" of protected class "gold" '
        'retains its data (spec.persistentVolumeReclaimPolicy "Retain"); deleting protected volumes is not '
        "allowed (storage.persistentVolumes.denyProtectedDelete))"
    )
    other = pv(storageClassName="standard")
    assert evaluate(policy_set, None, old=other, **delete).allowed
