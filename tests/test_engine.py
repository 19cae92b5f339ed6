"""The engine: enforcement modes, scopes and exemptions, workload templates, failures, mutation patches."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests import conftest
from webhook import engine, review
from webhook.policy import files

PRIVILEGED = [{"name": "app", "image": "nginx", "securityContext": {"privileged": True}}]
PRIV_MESSAGE = (
    'demo-pods.privileged: privileged (container "app" must not set securityContext.privileged=true)'
)


def policy_set(tmp_path: Path, body: str, *overrides: str) -> engine.PolicySet:
    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n" + body)
    catalog = conftest.make_catalog()
    return engine.PolicySet(files.load([tmp_path], overrides=overrides, catalog=catalog), catalog=catalog)


def run(
    ps: engine.PolicySet, body: dict[str, Any], chain: str = "validating", group: str | None = None
) -> review.Outcome:
    parsed = review.parse(body)
    return engine.evaluate(ps, parsed.object, parsed.context, chain=chain, group=group)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "allowed", "message", "warnings", "audit"),
    [
        ("enforce", False, PRIV_MESSAGE, [], {}),
        ("warn", True, "", [PRIV_MESSAGE], {}),
        ("audit", True, "", [], {"demo-pods-violations": PRIV_MESSAGE}),
        ("off", True, "", [], {}),
    ],
)
def test_each_mode_shapes_the_answer(
    tmp_path: Path, mode: str, allowed: bool, message: str, warnings: list[str], audit: dict[str, str]
) -> None:
    ps = policy_set(tmp_path, f"demoPods:\n  mode: {mode}\n")
    outcome = run(ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED)))
    assert (outcome.allowed, outcome.message, outcome.warnings, outcome.audit) == (
        allowed,
        message,
        warnings,
        audit,
    )
    if not allowed:
        assert (outcome.code, outcome.reason) == (403, "Forbidden")


def test_per_policy_mode_overrides_the_group(tmp_path: Path) -> None:
    ps = policy_set(
        tmp_path, "demoPods:\n  mode: enforce\n  policies:\n    demo-pods.privileged: {mode: warn}\n"
    )
    outcome = run(ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED)))
    assert outcome.allowed and outcome.warnings == [PRIV_MESSAGE]


def test_denials_of_several_groups_are_all_reported(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoPods: {}\ndemoRoles: {}\n")
    role = {"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}, {"verbs": ["*"]}]}
    outcome = run(ps, conftest.admission_review(role, namespace=""))
    assert (
        outcome.message == 'demo-roles.no-wildcard: wildcard verb (ClusterRole rules[1].verbs contains "*")'
    )


EXEMPTIONS = [
    ("namespaces: [kube-*]", {"namespace": "kube-system"}),
    ("users: [ci-bot]", {"username": "ci-bot"}),
    ("groups: ['system:masters']", {"groups": ["system:authenticated", "system:masters"]}),
    ("serviceAccounts: ['build/*']", {"username": "system:serviceaccount:build:deployer"}),
]


@pytest.mark.parametrize(("exemption", "request_fields"), EXEMPTIONS, ids=[e[0] for e in EXEMPTIONS])
def test_each_requester_exemption_allows(
    tmp_path: Path, exemption: str, request_fields: dict[str, Any]
) -> None:
    ps = policy_set(tmp_path, f"demoPods:\n  exemptions:\n    {exemption}\n")
    exempt = run(ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED), **request_fields))
    assert exempt.allowed and not exempt.warnings
    other = run(ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED)))
    assert not other.allowed


@pytest.mark.parametrize(
    ("exemption", "meta"),
    [
        ("objectLabels: {tier: system}", {"labels": {"tier": "system"}}),
        (
            "annotations: {policy.admission.dev/exempt: 'true'}",
            {"annotations": {"policy.admission.dev/exempt": "true"}},
        ),
    ],
)
def test_object_label_and_annotation_exemptions(tmp_path: Path, exemption: str, meta: dict[str, Any]) -> None:
    ps = policy_set(tmp_path, f"demoPods:\n  exemptions:\n    {exemption}\n")
    assert run(ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED, **meta))).allowed
    assert not run(ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED))).allowed


def test_runtime_class_exemption(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoPods:\n  exemptions:\n    runtimeClassNames: [gvisor]\n")
    obj = conftest.pod(containers=PRIVILEGED)
    obj["spec"]["runtimeClassName"] = "gvisor"
    assert run(ps, conftest.admission_review(obj)).allowed


def test_scope_namespaces_and_excludes(tmp_path: Path) -> None:
    ps = policy_set(
        tmp_path, "demoPods:\n  scope:\n    namespaces: [team-*]\n    excludeNamespaces: [team-ops]\n"
    )
    bad = conftest.pod(containers=PRIVILEGED)
    assert not run(ps, conftest.admission_review(bad, namespace="team-a")).allowed
    assert run(ps, conftest.admission_review(bad, namespace="team-ops")).allowed
    assert run(ps, conftest.admission_review(bad, namespace="default")).allowed


def test_namespace_selector_never_matches_without_namespace_labels(tmp_path: Path) -> None:
    ps = policy_set(
        tmp_path, "demoPods:\n  scope:\n    namespaceSelector:\n      matchLabels: {enforce: 'yes'}\n"
    )
    parsed = review.parse(conftest.admission_review(conftest.pod(containers=PRIVILEGED)))
    assert engine.evaluate(ps, parsed.object, parsed.context, chain="validating").allowed
    parsed.context.namespace_labels = {"enforce": "yes"}
    assert not engine.evaluate(ps, parsed.object, parsed.context, chain="validating").allowed


def test_object_selector_with_match_expressions(tmp_path: Path) -> None:
    ps = policy_set(
        tmp_path,
        "demoPods:\n  scope:\n    objectSelector:\n      matchExpressions:\n"
        "        - {key: env, operator: NotIn, values: [dev]}\n",
    )
    assert run(
        ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED, labels={"env": "dev"}))
    ).allowed
    assert not run(
        ps, conftest.admission_review(conftest.pod(containers=PRIVILEGED, labels={"env": "prod"}))
    ).allowed


@pytest.mark.parametrize(
    ("kind", "template_path"),
    [
        ("Deployment", "spec.template.spec"),
        ("ReplicaSet", "spec.template.spec"),
        ("StatefulSet", "spec.template.spec"),
        ("DaemonSet", "spec.template.spec"),
        ("Job", "spec.template.spec"),
        ("ReplicationController", "spec.template.spec"),
        ("CronJob", "spec.jobTemplate.spec.template.spec"),
    ],
)
def test_pod_policy_fires_on_every_workload_kind(tmp_path: Path, kind: str, template_path: str) -> None:
    ps = policy_set(tmp_path, "demoPods: {}\n")
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": copy.deepcopy(PRIVILEGED)}}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w"}, "spec": {}}
    holder = obj["spec"]
    if kind == "CronJob":
        holder["jobTemplate"] = {"spec": {}}
        holder = holder["jobTemplate"]["spec"]
    holder["template"] = template
    parsed = review.parse(conftest.admission_review(obj, kind=kind))
    inst = next(
        i for i in ps.select("validating", None, kind, "CREATE") if i.policy.id == "demo-pods.privileged"
    )
    pod = engine.workloads.pod_target(obj, kind)
    assert pod is not None
    violations = inst.policy.fn(pod, parsed.context, inst.params)
    assert violations[0].path == f"{template_path}.containers"
    outcome = engine.evaluate(ps, parsed.object, parsed.context, chain="validating")
    assert outcome.message == PRIV_MESSAGE


def test_workload_mode_downgrades_enforce_on_templates_only(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoPods:\n  workloadMode: warn\n")
    template = conftest.pod(containers=PRIVILEGED)
    outcome = run(ps, conftest.admission_review(conftest.deployment(template)))
    assert outcome.allowed and outcome.warnings == [PRIV_MESSAGE]
    assert not run(ps, conftest.admission_review(template)).allowed


@pytest.mark.parametrize(
    ("failure_mode", "allowed", "text"),
    [
        ("deny", False, 'policy "demo-pods.crash" failed to evaluate: RuntimeError: boom (failureMode deny'),
        (
            "allow",
            True,
            'policy "demo-pods.crash" failed to evaluate: RuntimeError: boom; allowed because its failureMode is allow',
        ),
    ],
)
def test_a_policy_that_raises_is_answered_per_failure_mode(
    tmp_path: Path, failure_mode: str, allowed: bool, text: str
) -> None:
    ps = policy_set(tmp_path, f"demoPods:\n  failureMode: {failure_mode}\n")
    outcome = run(ps, conftest.admission_review(conftest.pod(labels={"crash": "yes"})))
    assert outcome.allowed is allowed
    assert text in (outcome.message if not allowed else outcome.warnings[0])
    assert outcome.failed_policies == ["demo-pods.crash"]


def test_delete_is_validated_against_old_object(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoRoles: {}\n")
    role = {"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"verbs": ["*"]}]}
    outcome = run(
        ps, conftest.admission_review(None, old=role, operation="DELETE", kind="ClusterRole", namespace="")
    )
    assert not outcome.allowed


def test_status_subresource_updates_are_not_evaluated(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoPods: {}\n")
    bad = conftest.pod(containers=PRIVILEGED)
    assert run(ps, conftest.admission_review(bad, operation="UPDATE", old=bad, sub_resource="status")).allowed
    assert not run(
        ps, conftest.admission_review(bad, operation="UPDATE", old=bad, sub_resource="ephemeralcontainers")
    ).allowed


# -- mutations ---------------------------------------------------------------------------------------

LABELS = "demoLabels:\n  labels: {team: core, a.io/b: x}\n  optOutAnnotation: demo.admission.dev/labels\n"


def test_mutation_patch_is_minimal_and_reinvocation_safe(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, LABELS)
    obj = conftest.pod(labels={"app": "web"})
    outcome = run(ps, conftest.admission_review(obj), chain="mutating")
    assert outcome.patch == [
        {"op": "add", "path": "/metadata/labels/team", "value": "core"},
        {"op": "add", "path": "/metadata/labels/a.io~1b", "value": "x"},
    ]
    patched = jsonpatch.apply_patch(obj, outcome.patch)
    assert run(ps, conftest.admission_review(patched), chain="mutating").patch == []


def test_mutation_adds_whole_map_when_template_has_no_metadata(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoLabels:\n  labels: {team: core}\n")
    dep = conftest.deployment(conftest.pod())
    del dep["spec"]["template"]["metadata"]
    outcome = run(ps, conftest.admission_review(dep), chain="mutating")
    assert outcome.patch == [
        {"op": "add", "path": "/spec/template/metadata", "value": {"labels": {"team": "core"}}}
    ]


def test_opt_out_annotation_skips_the_group(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, LABELS)
    obj = conftest.pod(annotations={"demo.admission.dev/labels": "false"})
    assert run(ps, conftest.admission_review(obj), chain="mutating").patch == []


def test_pods_are_not_mutated_on_update_delete_or_connect(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, LABELS)
    obj = conftest.pod()
    assert run(ps, conftest.admission_review(obj, operation="UPDATE", old=obj), chain="mutating").patch == []
    assert (
        run(
            ps, conftest.admission_review(None, operation="DELETE", old=obj, kind="Pod"), chain="mutating"
        ).patch
        == []
    )
    dep = conftest.deployment(obj)
    new_dep = copy.deepcopy(dep)
    new_dep["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    assert run(ps, conftest.admission_review(new_dep, operation="UPDATE", old=dep), chain="mutating").patch != []


def test_mutation_rejection_denies_with_its_message(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, LABELS)
    outcome = run(ps, conftest.admission_review(conftest.pod(labels={"reject": "yes"})), chain="mutating")
    assert (outcome.allowed, outcome.message) == (False, 'demo-labels.add: label "reject" is set; remove it')
    assert outcome.patch == []


def test_warn_mode_mutation_reports_instead_of_patching(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, LABELS + "  mode: warn\n")
    outcome = run(ps, conftest.admission_review(conftest.pod()), chain="mutating")
    assert outcome.patch == []
    assert outcome.warnings == ["demo-labels.add would change 1 field(s): /metadata/labels"]


def test_group_path_runs_only_that_group(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoPods: {}\ndemoRoles: {}\n")
    bad = conftest.admission_review(conftest.pod(containers=PRIVILEGED))
    assert run(ps, bad, group="demo-roles").allowed
    assert not run(ps, bad, group="demo-pods").allowed


class FakeAuthorizer:
    def __init__(self, answers: dict[str, bool | None]) -> None:
        self.answers = answers

    def allowed(self, *, user: str, **_: Any) -> bool | None:
        return self.answers.get(user)


@pytest.mark.parametrize(
    ("when_unknown", "authorizer", "user", "allowed"),
    [
        ("enforce", FakeAuthorizer({"alice": True}), "alice", True),
        ("enforce", FakeAuthorizer({"alice": True}), "bob", False),  # unknown yet -> enforce
        ("exempt", FakeAuthorizer({}), "bob", True),  # unknown yet -> exempt
        ("exempt", FakeAuthorizer({"bob": False}), "bob", False),  # RBAC said no
        ("enforce", None, "alice", False),  # no cluster -> whenUnknown
        ("exempt", None, "alice", True),
    ],
)
def test_access_review_exemption_degrades_per_policy(
    tmp_path: Path, when_unknown: str, authorizer: FakeAuthorizer | None, user: str, allowed: bool
) -> None:
    ps = policy_set(
        tmp_path,
        "demoPods:\n  exemptions:\n    accessReview:\n      name: privileged-pods\n"
        f"      whenUnknown: {when_unknown}\n",
    )
    parsed = review.parse(conftest.admission_review(conftest.pod(containers=PRIVILEGED), username=user))
    parsed.context.authorizer = authorizer
    assert engine.evaluate(ps, parsed.object, parsed.context, chain="validating").allowed is allowed


def test_namespace_label_exemption_needs_known_labels(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, "demoPods:\n  exemptions:\n    namespaceSelector:\n      matchLabels: {tier: platform}\n")
    parsed = review.parse(conftest.admission_review(conftest.pod(containers=PRIVILEGED), namespace="ops"))
    assert not engine.evaluate(ps, parsed.object, parsed.context, chain="validating").allowed  # labels unknown
    parsed.context.namespace_labels = {"tier": "platform"}
    assert engine.evaluate(ps, parsed.object, parsed.context, chain="validating").allowed
    parsed.context.namespace_labels = {"tier": "apps"}
    assert not engine.evaluate(ps, parsed.object, parsed.context, chain="validating").allowed


def test_workload_update_that_keeps_the_template_is_not_mutated(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, LABELS)
    old = conftest.deployment(conftest.pod())
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5  # no template change: adding defaults now would roll every Pod
    assert run(ps, conftest.admission_review(scaled, operation="UPDATE", old=old), chain="mutating").patch == []
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"  # a rollout anyway
    assert run(ps, conftest.admission_review(changed, operation="UPDATE", old=old), chain="mutating").patch == [
        {"op": "add", "path": "/spec/template/metadata/labels", "value": {"team": "core", "a.io/b": "x"}},
    ]


def _two_step_catalog(calls: list[str]) -> Any:
    """demo-labels adds labels; a later group tags pods, and counts when it ran."""
    from webhook.policy import model, registry

    cat = conftest.make_catalog()
    registry.group(
        "demo-tags",
        key="demoTags",
        chain="mutating",
        settings_model=conftest.LabelSettings,
        order=20,
        registry=cat,
    )

    @registry.mutation("demo-tags.add", group="demo-tags", pod_spec=True, registry=cat)
    def tag(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> None:
        calls.append(pod.labels.get("team", ""))
        pod.metadata_for_write().setdefault("annotations", {})["tagged"] = "yes"

    return cat


@pytest.mark.parametrize(
    ("tags", "tagged"),
    [
        # The label the first group adds takes the pod out of the second group's object selector...
        ("scope: {objectSelector: {matchExpressions: [{key: team, operator: DoesNotExist}]}}", False),
        # ...or exempts it; a request-level exemption is unaffected by what the mutations did.
        ("exemptions: {objectLabels: {team: core}}", False),
        ("exemptions: {users: [someone-else]}", True),
        ("scope: {objectSelector: {matchLabels: {team: core}}}", True),
    ],
)
def test_later_mutations_see_labels_added_by_earlier_ones(tmp_path: Path, tags: str, tagged: bool) -> None:
    calls: list[str] = []
    cat = _two_step_catalog(calls)
    (tmp_path / "p.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n"
        f"demoLabels:\n  labels: {{team: core}}\ndemoTags:\n  {tags}\n"
    )
    ps = engine.PolicySet(files.load([tmp_path], catalog=cat), catalog=cat)
    outcome = run(ps, conftest.admission_review(conftest.pod()), chain="mutating")
    assert ({"op": "add", "path": "/metadata/annotations", "value": {"tagged": "yes"}} in outcome.patch) is tagged
    assert calls == (["core"] if tagged else [])


def test_checks_with_equal_result_keys_run_once_per_review(tmp_path: Path) -> None:
    """Pod Security runs a baseline check once for ``baseline`` enforce and ``restricted`` warn."""
    from webhook.policy import model, registry

    calls: list[str] = []
    cat = registry.Registry()

    class Levels(conftest.NoPrivilegedSettings):
        warn: str | None = None

    def modes(settings: Any) -> list[tuple[str, Any]]:
        return [(settings.mode, "baseline")] + ([("warn", settings.warn)] if settings.warn else [])

    registry.group("lv", key="lv", chain="validating", settings_model=Levels, modes=modes, registry=cat)

    @registry.check("lv.same", group="lv", pod_spec=True, registry=cat, result_key=lambda level: "same")
    def same(pod: model.PodTarget, ctx: model.ReviewContext, level: Any) -> list[model.Violation]:
        calls.append(f"same:{level}")
        return [model.Violation("found", "always", path="spec")]

    @registry.check("lv.per-level", group="lv", pod_spec=True, registry=cat)
    def per_level(pod: model.PodTarget, ctx: model.ReviewContext, level: Any) -> list[model.Violation]:
        calls.append(f"per-level:{level}")
        return []

    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\nlv: {mode: audit, warn: strict}\n")
    ps = engine.PolicySet(files.load([tmp_path], catalog=cat), catalog=cat)
    outcome = run(ps, conftest.admission_review(conftest.pod()))
    assert sorted(calls) == ["per-level:baseline", "per-level:strict", "same:baseline"]
    # Both modes still report the shared finding.
    assert outcome.audit == {"lv-violations": "lv.same: found (always)"}
    assert outcome.warnings == ["lv.same: found (always)"]


@pytest.mark.parametrize(
    ("labels", "asked"),
    [
        ({}, 0),  # outside the object selector: no SubjectAccessReview for it
        ({"checked": "yes", "legacy": "yes"}, 0),  # exempt by label
        ({"checked": "yes"}, 1),
    ],
)
def test_access_review_is_asked_only_when_nothing_cheaper_decides(
    tmp_path: Path, labels: dict[str, str], asked: int
) -> None:
    ps = policy_set(
        tmp_path,
        "demoPods:\n  scope: {objectSelector: {matchLabels: {checked: 'yes'}}}\n"
        "  exemptions:\n    objectLabels: {legacy: 'yes'}\n    accessReview: {name: privileged-pods}\n",
    )
    authorizer = conftest.CountingAuthorizer()
    parsed = review.parse(conftest.admission_review(conftest.pod(labels=labels, containers=PRIVILEGED)))
    parsed.context.authorizer = authorizer
    outcome = engine.evaluate(ps, parsed.object, parsed.context, chain="validating")
    assert authorizer.asked == asked
    assert outcome.allowed is (asked == 0)


def _one_gate_catalog(calls: list[str]) -> Any:
    """One mutating group (so one gate) of three mutations with declared write sets: the first
    edits containers, the second adds the label ``team: core``, the third records that it ran."""
    from webhook.policy import model, registry

    cat = conftest.make_catalog()
    registry.group("demo-gate", key="demoGate", chain="mutating", settings_model=conftest.LabelSettings, order=30,
                   registry=cat)

    @registry.mutation("demo-gate.containers", group="demo-gate", pod_spec=True, order=10, registry=cat,
                       writes=("spec.containers[*]",))
    def containers(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> None:
        calls.append("containers")
        for container in pod.spec["containers"]:
            container.setdefault("env", []).append({"name": "DEMO", "value": "1"})

    @registry.mutation("demo-gate.label", group="demo-gate", pod_spec=True, order=20, registry=cat,
                       writes=("metadata.labels",))
    def label(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> None:
        calls.append("label")
        pod.metadata_for_write().setdefault("labels", {})["team"] = "core"

    @registry.mutation("demo-gate.after", group="demo-gate", pod_spec=True, order=30, registry=cat,
                       writes=("metadata.annotations",))
    def after(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> None:
        calls.append("after")
        pod.metadata_for_write().setdefault("annotations", {})["after"] = "yes"

    return cat


def _one_gate_set(tmp_path: Path, cat: Any, selector: str) -> engine.PolicySet:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n"
        f"demoGate:\n  scope: {{objectSelector: {{matchExpressions: [{{key: team, operator: {selector}}}]}}}}\n"
    )
    return engine.PolicySet(files.load([tmp_path], catalog=cat), catalog=cat)


@pytest.mark.parametrize(("selector", "ran"), [
    # The label written by the second mutation takes the pod out of the group's own scope: the
    # gate is re-decided after a mutation that may write labels, and the third does not run...
    ("DoesNotExist", ["containers", "label"]),
    # ...and with the opposite selector the pod is out of scope from the start.
    ("Exists", []),
])
def test_a_gate_is_re_decided_after_a_mutation_of_its_own_group_writes_labels(
    tmp_path: Path, selector: str, ran: list[str]
) -> None:
    calls: list[str] = []
    ps = _one_gate_set(tmp_path, _one_gate_catalog(calls), selector)
    outcome = run(ps, conftest.admission_review(conftest.pod()), chain="mutating")
    assert calls == ran
    assert any(op["path"] == "/metadata/labels" for op in outcome.patch) is ("label" in ran)
    assert not any(op["path"] == "/metadata/annotations" for op in outcome.patch)


def test_a_gate_keeps_its_decision_across_mutations_that_cannot_change_what_it_reads(tmp_path: Path) -> None:
    """What the mutating pass keeps per gate: the object-reading decision and the counts of
    label- and spec-writing mutations it was made after. A containers-only mutation leaves the
    decision standing (the same entry); a label-writing one makes the next instance decide again."""
    calls: list[str] = []
    ps = _one_gate_set(tmp_path, _one_gate_catalog(calls), "DoesNotExist")
    parsed = review.parse(conftest.admission_review(conftest.pod()))
    first, second, third = ps.select("mutating", None, "Pod", "CREATE")
    assert (first.writes_metadata, second.writes_metadata, third.writes_metadata) == (False, True, True)
    assert not any(i.writes_spec for i in (first, second, third))
    state = engine._Pass(copy.deepcopy(parsed.object), parsed.context)
    entries = []
    for inst in (first, second):
        applies, pod = state.targets(inst)
        assert applies
        entries.append(state.objects[inst.gate])
        inst.policy.fn(pod, parsed.context, inst.params)
        state.wrote(inst)
    assert entries[0] == (0, 0, True)
    assert entries[1] is entries[0]  # decided for the first, kept for the second
    assert state.metadata_writes == 1
    assert state.targets(third)[0] is False  # the label is there now: out of the group's scope
    assert state.objects[first.gate] == (1, 0, False)
