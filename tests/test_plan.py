"""The compiled plan answers exactly as the plain registry does, byte for byte.

``engine.PolicySet(..., planned=False)`` runs every policy instance one by one, calling the
registered check functions: the reference. The default set runs compiled plans
(:mod:`webhook.plan`): Pod Security walks a pod once for its facts and runs only the checks those
facts leave in doubt. Both must give identical AdmissionReview answers on the upstream Pod Security
fixtures, the recorded reviews and real-world manifests of ``../shared/conformance`` (skipped when
absent), the repository's examples, and hypothesis-generated pods full of odd shapes, under the
shipped policies and variants (older Pod Security versions, stricter and looser security-context
rules); and every check a pod fails must have one of its screen's facts set (or the plan would
skip it).
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import conftest
from webhook import catalog, engine, review
from webhook.policy import files, model, workloads
from webhook.validators.pod_security import base, checks, facts

POLICIES = conftest.REPO / "policies"

# Policy sets that exercise levels, versions and modes the default set does not: pinned versions
# (older check revisions), baseline warn beside restricted enforce, per-check overrides, workloads
# enforced, and every other default group as shipped.
VARIANTS = {
    "default": [],
    "restricted-enforced": [
        "podSecurity.level=restricted", "podSecurity.warn.level=baseline", "podSecurity.warn.version=v1.22",
        "podSecurity.audit.version=v1.30", "podSecurity.workloadMode=enforce",
    ],
    "old-versions": [
        "podSecurity.version=v1.18", "podSecurity.warn.version=v1.24", "podSecurity.audit.version=v1.34",
    ],
    "overrides": ["securityContext.mode=enforce"],
    # Security-context rules stricter than shipped: every rule on, registries, tags, resources,
    # service accounts, runtime classes and privileged requesters all constrained.
    "security-context-strict": [
        "securityContext.mode=enforce",
        "securityContext.allowedRegistries=[registry.example.com, '*.gcr.io', docker.io/library]",
        "securityContext.imageTag.forbiddenTags=[latest, dev, '']",
        "securityContext.resources.requests=[cpu, memory, ephemeral-storage]",
        "securityContext.resources.limits=[cpu, memory]",
        "securityContext.readOnlyRootFilesystem.exemptContainers=['side*']",
        "securityContext.policies[security-context.runtimeClassName].mode=enforce",
        "securityContext.runtimeClassName.required=true",
        "securityContext.runtimeClassName.allowed=[gvisor]",
        "securityContext.defaultServiceAccount.forbiddenNames=[default, 'build*']",
        "securityContext.automountServiceAccountToken.allowedServiceAccounts=[checkout]",
        "securityContext.privileged.allowedUsers=[alice]",
    ],
    # ... and looser: untagged images and no resources required.
    "security-context-loose": [
        "securityContext.imageTag.allowUntagged=true", "securityContext.imageTag.forbiddenTags=[]",
        "securityContext.resources.requests=[]", "securityContext.resources.limits=[memory]",
    ],
}
OVERRIDES = """
  policies:
    pod-security.runAsNonRoot: {mode: enforce}
    pod-security.hostPorts: {mode: "off"}
    pod-security.privileged: {exemptions: {users: [bob]}}
"""


def _load(name: str) -> files.PolicyConfig:
    if name != "overrides":
        return files.load([POLICIES], overrides=VARIANTS[name], catalog=catalog.REGISTRY)
    # Read at import: the copy is gone once loaded (it used to stay behind in /tmp, one per run).
    with tempfile.TemporaryDirectory(prefix="plan-policies-") as scratch:
        folder = Path(scratch)
        for source in POLICIES.glob("*.yaml"):
            text = source.read_text()
            if source.name.startswith("10-"):
                text = text.replace("\n  scope:\n", OVERRIDES + "  scope:\n", 1)
            (folder / source.name).write_text(text)
        return files.load([folder], overrides=VARIANTS[name], catalog=catalog.REGISTRY)


def _policy_sets(name: str) -> tuple[engine.PolicySet, engine.PolicySet]:
    config = _load(name)
    return (engine.PolicySet(config, catalog=catalog.REGISTRY),
            engine.PolicySet(config, catalog=catalog.REGISTRY, planned=False))


SETS = {name: _policy_sets(name) for name in VARIANTS}


def _answers(policy_set: engine.PolicySet, body: dict[str, Any]) -> list[bytes]:
    """The answer of every validating path (the whole chain and each group) as bytes, or the error."""
    out = []
    for group in [None, *policy_set.groups("validating")]:
        try:
            parsed = review.parse(copy.deepcopy(body))
            outcome = engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating", group=group)
            out.append(orjson.dumps(review.respond(parsed, outcome)))
        except Exception as exc:  # noqa: BLE001 - both paths must fail alike too
            out.append(f"{type(exc).__name__}: {exc}".encode())
    return out


def assert_same(body: dict[str, Any]) -> None:
    for name, (planned, plain) in SETS.items():
        assert _answers(planned, body) == _answers(plain, body), name


def assert_screened(obj: dict[str, Any]) -> None:
    """Every revision of every check that fails ``obj``'s pod names a fact the pod shows."""
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else "Pod"
    target = workloads.pod_target(obj, kind)
    if target is None:
        return
    shown = facts.scan(target)
    meta = target.metadata or {}
    for check in checks.CHECKS:
        for revision in check.revisions:
            base.bind(target)
            if revision.fn(meta, target.spec) is not None:
                assert shown & check.screen, f"{check.id} (v1.{revision.since}) fails but its screen is clear"


def _reviews_of(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else "Pod"
    yield conftest.admission_review(obj, kind=kind)
    if kind == "Pod":  # an update that changes an image is evaluated; one that changes nothing is not
        old = copy.deepcopy(obj)
        yield conftest.admission_review(obj, kind=kind, operation="UPDATE", old=old)
        for container in (old.get("spec") or {}).get("containers") or []:
            if isinstance(container, dict):
                container["image"] = "old"
        yield conftest.admission_review(obj, kind=kind, operation="UPDATE", old=old)


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        if path.suffix == ".json":
            loaded = json.loads(path.read_text())
            return [loaded] if isinstance(loaded, dict) else []
        return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (yaml.YAMLError, ValueError, UnicodeDecodeError):
        return []


def _objects(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".yaml", ".yml", ".json") and path.name != "index.json":
            for index, document in enumerate(_documents(path)):
                found.append((f"{path.relative_to(folder)}#{index}", document))
    return found


def test_psa_fixtures() -> None:
    objects = _objects(conftest.shared("psa"))
    assert len(objects) >= 148
    for _name, obj in objects:
        assert_screened(obj)
        for body in _reviews_of(obj):
            assert_same(body)


def test_manifests() -> None:
    objects = _objects(conftest.shared("manifests"))
    assert objects
    for _name, obj in objects:
        if isinstance(obj.get("kind"), str):
            assert_screened(obj)
            assert_same(conftest.admission_review(obj, kind=obj["kind"]))


def test_recorded_reviews() -> None:
    bodies = [obj for _name, obj in _objects(conftest.shared("reviews"))]
    assert bodies
    for body in bodies:
        request = body.get("request")
        if isinstance(request, dict) and isinstance(request.get("object"), dict):
            assert_screened(request["object"])
        assert_same(body)


def test_examples_and_golden_reviews() -> None:
    for folder in (POLICIES / "examples", conftest.REPO / "tests" / "golden"):
        for _name, obj in _objects(folder):
            if "request" in obj:
                assert_same(obj)
            elif isinstance(obj.get("kind"), str):
                assert_same(conftest.admission_review(obj, kind=obj["kind"]))


# --- generated pods: every field the checks read, with right and wrong shapes ----------------

ODD = st.sampled_from([None, True, False, 0, 1, -1, 0.0, "", "x", [], {}, ["x"], {"x": 1}])


def _pick(*good: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(list(good)), ODD)


def _maybe(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=keys)


CAPS = st.lists(_pick("ALL", "NET_BIND_SERVICE", "CHOWN", "SYS_ADMIN", "NET_RAW"), max_size=3)
SECURITY_CONTEXT = _maybe({
    "privileged": _pick(True, False),
    "allowPrivilegeEscalation": _pick(True, False),
    "runAsNonRoot": _pick(True, False),
    "runAsUser": _pick(0, 1000),
    "procMount": _pick("Default", "Unmasked"),
    "capabilities": st.one_of(_maybe({"add": st.one_of(CAPS, ODD), "drop": st.one_of(CAPS, ODD)}), ODD),
    "seccompProfile": st.one_of(_maybe({"type": _pick("RuntimeDefault", "Localhost", "Unconfined")}), ODD),
    "appArmorProfile": st.one_of(_maybe({"type": _pick("RuntimeDefault", "Localhost", "Unconfined")}), ODD),
    "readOnlyRootFilesystem": _pick(True, False),
    "seLinuxOptions": st.one_of(
        _maybe({"type": _pick("container_t", "spc_t"), "user": _pick("u"), "role": _pick("r")}), ODD),
    "windowsOptions": st.one_of(_maybe({"hostProcess": _pick(True, False)}), ODD),
})
IMAGE = _pick(
    "nginx", "nginx:latest", "nginx:1.25", "nginx:dev", "nginx:", "nginx@sha256:ab", "nginx:latest@sha256:ab",
    "registry.example.com/a:1.0", "registry.example.com:5000/a", "registry.example.com:5000/a:latest",
    "eu.gcr.io/p/i:v1", "ghcr.io/acme/app", "index.docker.io/foo/bar", "Upper/app:1", "a/b:c:d", ":", "x@",
)
QUANTITIES = _maybe({"cpu": _pick("100m", ""), "memory": _pick("1Gi", ""), "ephemeral-storage": _pick("1Gi")})
RESOURCES = st.one_of(_maybe({"requests": st.one_of(QUANTITIES, ODD), "limits": st.one_of(QUANTITIES, ODD)}), ODD)
HANDLER = st.one_of(_maybe({"httpGet": _maybe({"host": _pick("", "evil")}), "tcpSocket": _maybe({"host": _pick("h")})}), ODD)
CONTAINER = st.one_of(
    _maybe({
        "name": _pick("app", "side", "app"),
        "image": IMAGE,
        "resources": RESOURCES,
        "securityContext": st.one_of(SECURITY_CONTEXT, ODD),
        "ports": st.one_of(st.lists(st.one_of(_maybe({"hostPort": _pick(0, 80), "containerPort": _pick(80)}), ODD),
                                    max_size=2), ODD),
        "readinessProbe": HANDLER,
        "lifecycle": st.one_of(_maybe({"postStart": HANDLER, "preStop": HANDLER}), ODD),
    }),
    ODD,
)
VOLUME = st.one_of(
    _maybe({
        "name": _pick("v", "w"),
        "hostPath": st.one_of(st.just({"path": "/"}), ODD),
        "configMap": st.one_of(st.just({"name": "c"}), ODD),
        "nfs": st.one_of(st.just({"server": "s"}), ODD),
        "emptyDir": st.one_of(st.just({}), ODD),
        "madeUp": st.one_of(st.just({"a": 1}), ODD),
    }),
    ODD,
)
POD_SECURITY_CONTEXT = st.one_of(
    st.builds(lambda sc, sysctls: {**sc, **sysctls}, SECURITY_CONTEXT, _maybe({
        "sysctls": st.one_of(st.lists(st.one_of(_maybe({"name": _pick("kernel.shm_rmid_forced", "kernel.msgmax")}),
                                                ODD), max_size=2), ODD)})),
    ODD,
)
ANNOTATIONS = st.dictionaries(
    st.sampled_from([
        "container.apparmor.security.beta.kubernetes.io/app", "seccomp.security.alpha.kubernetes.io/pod",
        "container.seccomp.security.alpha.kubernetes.io/app", "team",
    ]),
    _pick("runtime/default", "unconfined", "localhost/x", "docker/default"),
    max_size=3,
)
SPEC = _maybe({
    "containers": st.one_of(st.lists(CONTAINER, max_size=3), ODD),
    "initContainers": st.one_of(st.lists(CONTAINER, max_size=2), ODD),
    "ephemeralContainers": st.one_of(st.lists(CONTAINER, max_size=1), ODD),
    "volumes": st.one_of(st.lists(VOLUME, max_size=3), ODD),
    "securityContext": POD_SECURITY_CONTEXT,
    "hostNetwork": _pick(True, False),
    "hostPID": _pick(True),
    "hostIPC": _pick(True),
    "hostUsers": _pick(False),
    "serviceAccountName": _pick("default", "checkout", "build-bot", ""),
    "serviceAccount": _pick("default", "checkout"),
    "automountServiceAccountToken": _pick(True, False),
    "shareProcessNamespace": _pick(True, False),
    "runtimeClassName": _pick("gvisor", "runc", ""),
    "os": st.one_of(_maybe({"name": _pick("windows", "linux")}), ODD),
})
POD = st.builds(
    lambda spec, annotations: {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "p", "annotations": annotations}, "spec": spec},
    SPEC, ANNOTATIONS,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(POD)
def test_generated_pods(pod: dict[str, Any]) -> None:
    assert_screened(pod)
    assert_same(conftest.admission_review(pod))
    template = {"metadata": pod["metadata"], "spec": pod["spec"]}
    assert_same(conftest.admission_review(conftest.deployment(template), kind="Deployment"))


def test_the_plan_runs_for_the_typical_pod() -> None:
    """The benchmark's Pod: the planned path answers (no fallback), and says what the plain one says."""
    from bench import reviews

    planned, plain = SETS["default"]
    body = orjson.loads(reviews.bodies()["pod"])
    parsed = review.parse(body)
    compiled = planned.validation(None, "Pod", "CREATE")
    assert compiled is not None and compiled.batches
    assert engine._collect(compiled, parsed.object, parsed.context) is not None
    assert_same(body)


def test_screens_name_facts() -> None:
    for check in checks.CHECKS:
        assert 0 < check.screen <= base.ANY, check.id


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_compile(name: str) -> None:
    planned, _plain = SETS[name]
    assert planned.validation(None, "Pod", "CREATE") is not None


# --- the envelope read without pydantic: what it accepts, the model accepts alike -------------

FIELD = st.one_of(st.sampled_from(["", "x", "CREATE", "UPDATE", "Pod", "admission.k8s.io/v1"]), ODD)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten: many envelopes are valid, and each field is sometimes not."""
    return st.one_of(*[good] * 9, FIELD)


TEXT = _mostly(st.sampled_from(["", "x", "shop"]))
ENVELOPE = st.fixed_dictionaries(
    {"request": st.fixed_dictionaries(
        {"uid": _mostly(st.just("u-1")),
         "kind": _mostly(st.fixed_dictionaries({"kind": _mostly(st.just("Pod"))},
                                               optional={"group": TEXT, "version": TEXT})),
         "operation": _mostly(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]))},
        optional={
            "name": TEXT, "namespace": TEXT, "subResource": TEXT,
            "dryRun": _mostly(st.booleans()), "options": _mostly(st.just({"kind": "CreateOptions"})),
            "object": _mostly(st.just({"metadata": {"name": "n"}})),
            "oldObject": _mostly(st.just({"metadata": {"generateName": "g-"}})),
            "resource": _mostly(st.fixed_dictionaries({}, optional={"resource": TEXT, "group": TEXT})),
            "requestKind": st.one_of(st.none(), _mostly(st.fixed_dictionaries({"kind": TEXT},
                                                                              optional={"group": TEXT}))),
            "userInfo": _mostly(st.fixed_dictionaries({}, optional={
                "username": TEXT, "uid": TEXT, "groups": st.one_of(st.none(), _mostly(st.lists(TEXT, max_size=2))),
                "extra": st.one_of(st.none(), _mostly(st.just({"k": ["v"]})))})),
        }),
     "apiVersion": _mostly(st.sampled_from([review.V1, review.V1BETA1])),
     "kind": _mostly(st.just("AdmissionReview"))},
)


def _context_by_model(req: review.AdmissionRequest) -> model.ReviewContext:
    """The context as it was built from the pydantic model alone."""
    return model.ReviewContext(
        operation=req.operation, kind=req.kind.kind, group=req.kind.group, version=req.kind.version,
        resource=req.resource.resource, sub_resource=req.subResource, namespace=req.namespace,
        name=req.name or review._name_of(req.object) or review._name_of(req.oldObject), uid=req.uid,
        username=req.userInfo.username, user_groups=tuple(req.userInfo.groups or ()), dry_run=bool(req.dryRun),
        old_object=req.oldObject,
    )


ACCEPTED = []


@settings(max_examples=400, deadline=None)
@given(ENVELOPE)
def test_the_direct_envelope_read_agrees_with_the_model(data: dict[str, Any]) -> None:
    direct = review._direct(data, keys_checked=True) if isinstance(data.get("request"), dict) else None
    if direct is None:
        return
    ACCEPTED.append(1)
    envelope = review.AdmissionReview.model_validate(data)  # must not raise: the direct read accepted it
    assert direct[0] == _context_by_model(envelope.request)
    assert (direct[1], direct[2]) == (envelope.request.object, envelope.request.oldObject)
    parsed = review.parse(orjson.dumps(data))
    assert parsed.request == envelope.request
    assert parsed.api_version == envelope.apiVersion


def test_the_typical_review_is_read_directly() -> None:
    from bench import reviews

    assert review._direct(orjson.loads(reviews.bodies()["pod"]), keys_checked=True) is not None


def test_a_dict_with_other_keys_goes_to_the_model() -> None:
    body = conftest.admission_review({"kind": "Pod", "metadata": {"name": "p"}, 1: "x"})
    with pytest.raises(Exception, match="valid string"):
        review.parse(body)
