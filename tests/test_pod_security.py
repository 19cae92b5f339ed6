"""Pod Security Standards: every check's exact upstream wording, version gates, settings, workloads."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest

from webhook import engine, errors
from webhook.policy import files, model, registry, workloads
from webhook.validators import pod_security
from webhook.validators.pod_security import checks, evaluation, levels

REPO = Path(__file__).resolve().parents[1]


# --- builders -------------------------------------------------------------------------------------


def container(name: str, **security: Any) -> dict[str, Any]:
    """A container that passes restricted, with ``security`` merged into its securityContext."""
    sc: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    sc.update(security)
    return {"name": name, "image": f"registry.example/{name}:1", "securityContext": sc}


def pod(
    *containers: dict[str, Any],
    init: tuple[dict[str, Any], ...] = (),
    ephemeral: tuple[dict[str, Any], ...] = (),
    annotations: dict[str, str] | None = None,
    pod_security_context: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod that passes restricted unless the arguments say otherwise."""
    sc: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if pod_security_context is not None:
        sc = pod_security_context
    body: dict[str, Any] = {"securityContext": sc, "containers": list(containers) or [container("app")]}
    if init:
        body["initContainers"] = list(init)
    if ephemeral:
        body["ephemeralContainers"] = list(ephemeral)
    body.update(spec)
    meta: dict[str, Any] = {"name": "web", "namespace": "team-a"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def msg(obj: dict[str, Any], level: str, version: str = "latest") -> str | None:
    return pod_security.message(obj, level=level, version=version)


def reasons(obj: dict[str, Any], level: str, version: str = "latest") -> list[str]:
    return [v.reason for v in pod_security.evaluate(obj, level=level, version=version)]


B = 'violates PodSecurity "baseline:latest": '
R = 'violates PodSecurity "restricted:latest": '


# --- one table per check: exact upstream wording, including multi-container aggregation -----------

BASELINE_CASES = [
    pytest.param(pod(), None, id="restricted-pod-passes-baseline"),
    pytest.param(
        pod(container("app", privileged=True)),
        B + 'privileged (container "app" must not set securityContext.privileged=true)',
        id="privileged",
    ),
    pytest.param(
        pod(
            container("app", privileged=True),
            init=(container("init", privileged=True),),
            ephemeral=(container("debug", privileged=False),),
        ),
        B + 'privileged (containers "init", "app" must not set securityContext.privileged=true)',
        id="privileged-two-containers-in-visit-order",
    ),
    pytest.param(
        pod(hostNetwork=True, hostPID=True, hostIPC=True),
        B + "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
        id="hostNamespaces",
    ),
    pytest.param(
        pod(
            volumes=[
                {"name": "a", "hostPath": {"path": "/"}},
                {"name": "ok", "emptyDir": {}},
                {"name": "b", "hostPath": {"path": "/var"}},
            ]
        ),
        B + 'hostPath volumes (volumes "a", "b")',
        id="hostPathVolumes",
    ),
    pytest.param(
        pod(
            container("app", capabilities={"add": ["NET_RAW", "SYS_ADMIN", "CHOWN"]}),
            init=(container("init", capabilities={"add": ["NET_RAW"]}),),
        ),
        B + 'non-default capabilities (containers "init", "app" must not include "NET_RAW", "SYS_ADMIN" '
        "in securityContext.capabilities.add)",
        id="capabilities_baseline",
    ),
    pytest.param(
        pod(container("app", capabilities={"add": ["CHOWN", "NET_BIND_SERVICE", "KILL"]})),
        None,
        id="capabilities_baseline-default-set-allowed",
    ),
    pytest.param(
        pod(
            {
                **container("app"),
                "ports": [{"containerPort": 1, "hostPort": 9000}, {"containerPort": 2, "hostPort": 10000}],
            },
            init=(
                {
                    **container("init"),
                    "ports": [{"containerPort": 80, "hostPort": 80}, {"containerPort": 81}],
                },
            ),
        ),
        B + 'hostPort (containers "init", "app" use hostPorts 10000, 80, 9000)',
        id="hostPorts-ports-sorted-as-strings",
    ),
    pytest.param(
        pod({**container("app"), "ports": [{"containerPort": 8080, "hostPort": 0}]}),
        None,
        id="hostPort-zero-allowed",
    ),
    pytest.param(
        pod(container("app", appArmorProfile={"type": "Unconfined"})),
        B + 'forbidden AppArmor profile (container "app" must not set AppArmor profile type to "Unconfined")',
        id="appArmorProfile-field",
    ),
    pytest.param(
        pod(
            container("app", appArmorProfile={"type": "Unconfined"}),
            pod_security_context={"appArmorProfile": {"type": "Unconfined"}},
            annotations={
                "container.apparmor.security.beta.kubernetes.io/app": "unconfined",
                "container.apparmor.security.beta.kubernetes.io/other": "localhost/mine",
            },
        ),
        B
        + 'forbidden AppArmor profiles (pod and container "app" and annotation must not set AppArmor profile '
        'type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/app="unconfined"")',
        id="appArmorProfile-pod-container-annotation",
    ),
    pytest.param(
        pod(
            container("app", appArmorProfile={"type": "Localhost", "localhostProfile": "p"}),
            annotations={"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"},
        ),
        None,
        id="appArmorProfile-allowed-values",
    ),
    pytest.param(
        pod(
            container("app", seLinuxOptions={"user": "system_u", "role": "sysadm_r"}),
            pod_security_context={"seLinuxOptions": {"type": "spc_t"}},
        ),
        B + 'seLinuxOptions (pod and container "app" set forbidden securityContext.seLinuxOptions: '
        'type "spc_t"; user may not be set; role may not be set)',
        id="seLinuxOptions",
    ),
    pytest.param(
        pod(container("app", seLinuxOptions={"role": "sysadm_r"})),
        B + 'seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: '
        "role may not be set)",
        id="seLinuxOptions-role-only",
    ),
    pytest.param(
        pod(container("app", procMount="Unmasked"), init=(container("init", procMount="Default"),)),
        B + 'procMount (container "app" must not set securityContext.procMount to "Unmasked")',
        id="procMount",
    ),
    pytest.param(
        pod(
            container("app", seccompProfile={"type": "Unconfined"}),
            pod_security_context={"seccompProfile": {"type": "Unconfined"}},
        ),
        B + 'seccompProfile (pod and container "app" must not set securityContext.seccompProfile.type '
        'to "Unconfined")',
        id="seccompProfile_baseline",
    ),
    pytest.param(
        pod(
            pod_security_context={
                "sysctls": [
                    {"name": "kernel.msgmax", "value": "1"},
                    {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                    {"name": "vm.swappiness", "value": "1"},
                ]
            }
        ),
        B + "forbidden sysctls (kernel.msgmax, vm.swappiness)",
        id="sysctls",
    ),
    pytest.param(
        pod(
            container("app", windowsOptions={"hostProcess": True}),
            init=(container("init", windowsOptions={"hostProcess": True}),),
            pod_security_context={"windowsOptions": {"hostProcess": True}},
        ),
        B + 'hostProcess (pod and containers "init", "app" must not set '
        "securityContext.windowsOptions.hostProcess=true)",
        id="windowsHostProcess",
    ),
    pytest.param(
        pod(
            {
                **container("app"),
                "livenessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}},
                "readinessProbe": {"tcpSocket": {"port": 80, "host": "b.example"}},
            },
            init=(
                {
                    **container("init"),
                    "lifecycle": {"preStop": {"httpGet": {"port": 1, "host": "a.example"}}},
                },
            ),
        ),
        B + 'probe or lifecycle host (containers "app", "init" use probe or lifecycle hosts '
        '"10.0.0.1", "a.example", "b.example")',
        id="hostProbesAndHostLifecycle-sorted-sets",
    ),
    pytest.param(
        pod({**container("app"), "startupProbe": {"httpGet": {"port": 80, "host": ""}}}),
        None,
        id="hostProbesAndHostLifecycle-empty-host-allowed",
    ),
    pytest.param(
        pod(
            container("app", privileged=True),
            hostPID=True,
            pod_security_context={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        ),
        B + "host namespaces (hostPID=true), "
        'privileged (container "app" must not set securityContext.privileged=true), '
        "forbidden sysctls (kernel.msgmax)",
        id="several-checks-in-upstream-order",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), BASELINE_CASES)
def test_baseline_check_wording(obj: dict[str, Any], expected: str | None) -> None:
    assert msg(obj, "baseline") == expected


RESTRICTED_CASES = [
    pytest.param(pod(container("a"), container("b")), None, id="restricted-pod-passes"),
    pytest.param(
        pod(
            {"name": "a", "image": "x", "securityContext": {"capabilities": {"drop": ["ALL"]}}},
            {
                "name": "b",
                "image": "x",
                "securityContext": {"allowPrivilegeEscalation": True, "capabilities": {"drop": ["ALL"]}},
            },
        ),
        R + 'allowPrivilegeEscalation != false (containers "a", "b" must set '
        "securityContext.allowPrivilegeEscalation=false)",
        id="allowPrivilegeEscalation",
    ),
    pytest.param(
        pod(
            {"name": "a", "image": "x", "securityContext": {"allowPrivilegeEscalation": False}},
            container("b", capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_TIME"]}),
        ),
        R + 'unrestricted capabilities (container "a" must set securityContext.capabilities.drop=["ALL"]; '
        'container "b" must not include "SYS_TIME" in securityContext.capabilities.add)',
        id="capabilities_restricted",
    ),
    pytest.param(
        pod(container("a", capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})),
        None,
        id="capabilities_restricted-net-bind-service-allowed",
    ),
    pytest.param(
        pod(
            container("a", seccompProfile={"type": "RuntimeDefault"}),
            container("b"),
            pod_security_context={"runAsNonRoot": True},
        ),
        R + 'seccompProfile (pod or container "b" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")',
        id="seccompProfile_restricted-implicit",
    ),
    pytest.param(
        pod(container("a", seccompProfile={"type": "Unconfined"})),
        R + 'seccompProfile (container "a" must not set securityContext.seccompProfile.type to "Unconfined")',
        id="seccompProfile_restricted-explicit",
    ),
    pytest.param(
        pod(
            container("a", runAsNonRoot=False),
            pod_security_context={"runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}},
        ),
        R + 'runAsNonRoot != true (pod and container "a" must not set securityContext.runAsNonRoot=false)',
        id="runAsNonRoot-explicit",
    ),
    pytest.param(
        pod(
            container("a", runAsNonRoot=True),
            container("b"),
            init=(container("i"),),
            pod_security_context={"seccompProfile": {"type": "RuntimeDefault"}},
        ),
        R + 'runAsNonRoot != true (pod or containers "i", "b" must set securityContext.runAsNonRoot=true)',
        id="runAsNonRoot-implicit",
    ),
    pytest.param(
        pod(
            container("a", runAsUser=0),
            container("b", runAsUser=1000),
            pod_security_context={
                "runAsNonRoot": True,
                "runAsUser": 0,
                "seccompProfile": {"type": "Localhost"},
            },
        ),
        R + 'runAsUser=0 (pod and container "a" must not set runAsUser=0)',
        id="runAsUser",
    ),
    pytest.param(
        pod(
            volumes=[
                {"name": "n", "nfs": {"server": "s", "path": "/"}},
                {"name": "h", "hostPath": {"path": "/"}},
                {"name": "ok", "configMap": {"name": "c"}},
                {"name": "g", "gitRepo": {"repository": "r"}},
                {"name": "img", "image": {"reference": "registry.example/data:1"}},
                {"name": "defaulted"},
            ]
        ),
        R + 'restricted volume types (volumes "n", "h", "g" use restricted volume types '
        '"gitRepo", "hostPath", "nfs")',
        id="restrictedVolumes",
    ),
    pytest.param(
        pod(volumes=[{"name": "new", "someFutureSource": {}}]),
        R + 'restricted volume types (volume "new" uses restricted volume type "unknown")',
        id="restrictedVolumes-unknown-source-fails-closed",
    ),
    pytest.param(
        pod(container("a", procMount="Unmasked"), hostUsers=False),
        R + 'procMount (container "a" must not set securityContext.procMount to "Unmasked")',
        id="procMount_restricted-even-in-user-namespace",
    ),
    pytest.param(
        pod(container("a", privileged=True), volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        R + 'privileged (container "a" must not set securityContext.privileged=true), '
        'restricted volume types (volume "h" uses restricted volume type "hostPath")',
        id="baseline-before-restricted-and-hostPath-overridden",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), RESTRICTED_CASES)
def test_restricted_check_wording(obj: dict[str, Any], expected: str | None) -> None:
    assert msg(obj, "restricted") == expected


def test_violation_carries_first_offending_field_and_value() -> None:
    found = pod_security.evaluate(
        pod(container("a"), container("b", allowPrivilegeEscalation=True)), level="restricted"
    )
    assert found == [
        model.Violation(
            "allowPrivilegeEscalation != false",
            'container "b" must set securityContext.allowPrivilegeEscalation=false',
            path="spec.containers[1].securityContext.allowPrivilegeEscalation",
            value=True,
            allowed=False,
        )
    ]


def test_privileged_level_runs_no_check() -> None:
    wild = pod(
        container("a", privileged=True), hostNetwork=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}]
    )
    assert pod_security.evaluate(wild, level="privileged") == []


def test_annotation_values_are_go_quoted() -> None:
    obj = pod(annotations={"container.apparmor.security.beta.kubernetes.io/app": 'say "hi"\n'})
    assert msg(obj, "baseline") == (
        B + "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
        '"container.apparmor.security.beta.kubernetes.io/app="say \\"hi\\"\\n"")'
    )


# --- version gates ---------------------------------------------------------------------------------


def test_latest_is_the_newest_revision_and_newer_versions_clamp_to_it() -> None:
    assert checks.LATEST_MINOR == 37
    assert checks.active("restricted", "latest") is checks.active("restricted", "v1.37")
    assert list(checks.active("restricted", "v1.99")) == list(checks.active("restricted", "v1.37"))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (
            "v1.26",
            "forbidden sysctls (net.ipv4.ip_local_reserved_ports, net.ipv4.tcp_keepalive_time, "
            "net.ipv4.tcp_rmem, net.ipv4.tcp_slow_start_after_idle)",
        ),
        (
            "v1.27",
            "forbidden sysctls (net.ipv4.tcp_keepalive_time, net.ipv4.tcp_rmem, "
            "net.ipv4.tcp_slow_start_after_idle)",
        ),
        ("v1.29", "forbidden sysctls (net.ipv4.tcp_rmem, net.ipv4.tcp_slow_start_after_idle)"),
        ("v1.32", "forbidden sysctls (net.ipv4.tcp_slow_start_after_idle)"),
        ("v1.36", "forbidden sysctls (net.ipv4.tcp_slow_start_after_idle)"),
        ("v1.37", None),
        ("latest", None),
    ],
)
def test_sysctl_allow_list_grows_by_version(version: str, expected: str | None) -> None:
    names = [
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.tcp_notsent_lowat",
    ]
    if version in ("v1.26", "v1.27", "v1.29", "v1.32", "v1.36"):
        names.remove(
            "net.ipv4.tcp_notsent_lowat"
        )  # keep the expected lists short: same version as its sibling
    obj = pod(pod_security_context={"sysctls": [{"name": n, "value": "1"} for n in names]})
    got = msg(obj, "baseline", version)
    assert got == (None if expected is None else f'violates PodSecurity "baseline:{version}": {expected}')


def test_v1_32_and_v1_37_disagree_on_the_1_37_sysctls() -> None:
    obj = pod(pod_security_context={"sysctls": [{"name": "net.ipv4.tcp_notsent_lowat", "value": "1"}]})
    assert reasons(obj, "baseline", "v1.32") == ["forbidden sysctls"]
    assert reasons(obj, "baseline", "v1.37") == []


def test_host_probes_forbidden_from_v1_34() -> None:
    obj = pod({**container("app"), "readinessProbe": {"tcpSocket": {"port": 80, "host": "node.local"}}})
    assert reasons(obj, "baseline", "v1.33") == []
    assert reasons(obj, "baseline", "v1.34") == ["probe or lifecycle host"]


def test_selinux_container_engine_type_allowed_from_v1_31() -> None:
    obj = pod(container("app", seLinuxOptions={"type": "container_engine_t"}))
    assert msg(obj, "baseline", "v1.30") == (
        'violates PodSecurity "baseline:v1.30": seLinuxOptions (container "app" set forbidden '
        'securityContext.seLinuxOptions: type "container_engine_t")'
    )
    assert msg(obj, "baseline", "v1.31") is None


def test_user_namespace_relaxations_start_at_v1_35() -> None:
    obj = pod(
        container("app", procMount="Unmasked", runAsUser=0),
        hostUsers=False,
        pod_security_context={"seccompProfile": {"type": "RuntimeDefault"}},
    )
    assert reasons(obj, "baseline", "v1.34") == ["procMount"]
    assert reasons(obj, "baseline", "v1.35") == []
    assert reasons(obj, "restricted", "v1.34") == ["procMount", "runAsNonRoot != true", "runAsUser=0"]
    # v1.35: runAsNonRoot/runAsUser are skipped for user-namespace pods; procMount_restricted stays strict.
    assert reasons(obj, "restricted", "v1.35") == ["procMount"]
    assert [v.path for v in pod_security.evaluate(obj, level="restricted", version="v1.35")] == [
        "spec.containers[0].securityContext.procMount"
    ]


def test_host_users_true_gets_no_relaxation() -> None:
    obj = pod(container("app", runAsUser=0), hostUsers=True)
    assert reasons(obj, "restricted") == ["runAsUser=0"]


def test_windows_pods_exempt_from_linux_only_restricted_checks_from_v1_25() -> None:
    windows: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "w"},
        "spec": {
            "os": {"name": "windows"},
            "securityContext": {"runAsNonRoot": True},
            "containers": [{"name": "app", "image": "mcr.example/app:1"}],
        },
    }
    assert reasons(windows, "restricted", "v1.24") == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "seccompProfile",
    ]
    assert reasons(windows, "restricted", "v1.25") == []
    linux = copy.deepcopy(windows)
    linux["spec"]["os"]["name"] = "linux"
    assert reasons(linux, "restricted", "v1.25") == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "seccompProfile",
    ]


def test_restricted_checks_appear_at_their_versions() -> None:
    obj = pod(
        {
            "name": "app",
            "image": "x",
            "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_TIME"]}},
        },
        pod_security_context={"runAsNonRoot": True},
    )
    # v1.7: no allowPrivilegeEscalation, baseline seccomp/capabilities checks still in force.
    assert reasons(obj, "restricted", "v1.7") == ["non-default capabilities"]
    assert reasons(obj, "restricted", "v1.8") == [
        "non-default capabilities",
        "allowPrivilegeEscalation != false",
    ]
    assert reasons(obj, "restricted", "v1.19") == [
        "non-default capabilities",
        "allowPrivilegeEscalation != false",
        "seccompProfile",
    ]
    assert reasons(obj, "restricted", "v1.22") == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "seccompProfile",
    ]
    assert reasons(obj, "restricted", "v1.23") == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsUser=0",
        "seccompProfile",
    ]


def test_seccomp_annotations_before_v1_19_fields_after() -> None:
    obj = pod(
        container("app", seccompProfile={"type": "Unconfined"}),
        annotations={
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/app": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/gone": "unconfined",
        },
    )
    assert msg(obj, "baseline", "v1.18") == (
        'violates PodSecurity "baseline:v1.18": seccompProfile (forbidden annotations '
        'container.seccomp.security.alpha.kubernetes.io/app="unconfined", '
        'seccomp.security.alpha.kubernetes.io/pod="unconfined")'
    )
    assert msg(obj, "baseline", "v1.19") == (
        'violates PodSecurity "baseline:v1.19": seccompProfile '
        '(container "app" must not set securityContext.seccompProfile.type to "Unconfined")'
    )


# --- registered checks, updates, workloads --------------------------------------------------------


def run_group(
    target_obj: dict[str, Any],
    kind: str,
    params: pod_security.LevelVersion,
    ctx: model.ReviewContext | None = None,
) -> dict[str, list[model.Violation]]:
    target = workloads.pod_target(target_obj, kind)
    assert target is not None
    ctx = ctx or model.ReviewContext(kind=kind, operation="CREATE")
    out = {}
    for policy in registry.REGISTRY.in_group("pod-security"):
        found = policy.fn(target, ctx, params)
        assert len(found) <= 1
        if found:
            out[policy.id] = found
    return out


def test_every_upstream_check_is_registered_in_upstream_order() -> None:
    ids = [p.id for p in registry.REGISTRY.in_group("pod-security")]
    assert ids == [
        "pod-security." + c
        for c in (
            "appArmorProfile",
            "capabilities_baseline",
            "hostNamespaces",
            "hostPathVolumes",
            "hostPorts",
            "hostProbesAndHostLifecycle",
            "privileged",
            "procMount",
            "seLinuxOptions",
            "seccompProfile_baseline",
            "sysctls",
            "windowsHostProcess",
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "procMount_restricted",
            "restrictedVolumes",
            "runAsNonRoot",
            "runAsUser",
            "seccompProfile_restricted",
        )
    ]
    policy = registry.REGISTRY.policies["pod-security.allowPrivilegeEscalation"]
    assert policy.pod_spec and policy.chain == "validating" and "CronJob" in policy.kinds


def test_registered_checks_return_nothing_when_not_in_force() -> None:
    obj = pod(container("a", runAsUser=0), volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    at_restricted = run_group(obj, "Pod", pod_security.LevelVersion(level="restricted"))
    assert set(at_restricted) == {
        "pod-security.restrictedVolumes",
        "pod-security.runAsUser",
    }  # hostPath overridden
    old = run_group(obj, "Pod", pod_security.LevelVersion(level="restricted", version="v1.22"))
    assert set(old) == {"pod-security.restrictedVolumes"}  # runAsUser arrives in v1.23
    assert run_group(obj, "Pod", pod_security.LevelVersion(level="privileged")) == {}


@pytest.mark.parametrize(
    ("kind", "wrap", "spec_path"),
    [
        ("Deployment", lambda t: {"kind": "Deployment", "spec": {"template": t}}, "spec.template.spec"),
        (
            "CronJob",
            lambda t: {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": t}}}},
            "spec.jobTemplate.spec.template.spec",
        ),
    ],
)
def test_workload_templates_report_paths_into_the_template(kind: str, wrap: Any, spec_path: str) -> None:
    inner = pod(
        container("app", allowPrivilegeEscalation=True),
        annotations={"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
    )
    obj = wrap({"metadata": inner["metadata"], "spec": inner["spec"]})
    found = run_group(obj, kind, pod_security.LevelVersion(level="restricted", version="v1.30"))
    meta_path = spec_path.removesuffix(".spec") + ".metadata"
    assert found["pod-security.allowPrivilegeEscalation"][0].path == (
        f"{spec_path}.containers[0].securityContext.allowPrivilegeEscalation"
    )
    assert found["pod-security.appArmorProfile"][0].path == (
        f"{meta_path}.annotations[container.apparmor.security.beta.kubernetes.io/app]"
    )
    assert pod_security.message(obj, level="restricted", version="v1.30", mode="warn") == (
        'would violate PodSecurity "restricted:v1.30": forbidden AppArmor profile (annotation must not set '
        'AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="unconfined""), '
        'allowPrivilegeEscalation != false (container "app" must set '
        "securityContext.allowPrivilegeEscalation=false)"
    )


def test_insignificant_pod_update_is_not_re_evaluated() -> None:
    old = pod(container("app", privileged=True))
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"tier": "web"}
    params = pod_security.LevelVersion(level="baseline")
    update = model.ReviewContext(kind="Pod", operation="UPDATE", old_object=old)
    assert run_group(new, "Pod", params, update) == {}
    new["spec"]["containers"][0]["image"] = "registry.example/app:2"
    assert set(run_group(new, "Pod", params, update)) == {"pod-security.privileged"}


def test_ignored_pod_subresources_and_workload_subresources_are_skipped() -> None:
    params = pod_security.LevelVersion(level="baseline")
    bad = pod(container("app", privileged=True))
    assert run_group(bad, "Pod", params, model.ReviewContext(kind="Pod", sub_resource="status")) == {}
    assert set(
        run_group(bad, "Pod", params, model.ReviewContext(kind="Pod", sub_resource="ephemeralcontainers"))
    )
    dep = {"kind": "Deployment", "spec": {"template": {"spec": bad["spec"]}}}
    assert (
        run_group(dep, "Deployment", params, model.ReviewContext(kind="Deployment", sub_resource="scale"))
        == {}
    )


SIGNIFICANT = [
    ("labels only", lambda p: p["metadata"].update(labels={"a": "b"}), False),
    ("image", lambda p: p["spec"]["containers"][0].update(image="other:2"), True),
    ("init image", lambda p: p["spec"]["initContainers"][0].update(image="other:2"), True),
    ("container added", lambda p: p["spec"]["containers"].append({"name": "x", "image": "x"}), True),
    (
        "pod seccomp annotation",
        lambda p: p["metadata"].update(
            annotations={"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
        ),
        True,
    ),
    (
        "container seccomp annotation",
        lambda p: p["metadata"].update(
            annotations={"container.seccomp.security.alpha.kubernetes.io/app": "unconfined"}
        ),
        True,
    ),
    (
        "ephemeral container added",
        lambda p: p["spec"].update(ephemeralContainers=[{"name": "dbg", "image": "x"}]),
        True,
    ),
    (
        "securityContext (immutable; API server rejects)",
        lambda p: p["spec"]["containers"][0].update(securityContext={"privileged": True}),
        False,
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [(fn, want) for _, fn, want in SIGNIFICANT],
    ids=[name for name, _, _ in SIGNIFICANT],
)
def test_is_significant_pod_update(change: Any, expected: bool) -> None:
    old = pod(container("app"), init=(container("init"),))
    new = copy.deepcopy(old)
    change(new)
    assert evaluation.is_significant_pod_update(new, old) is expected


def test_changed_ephemeral_container_image_is_significant() -> None:
    old = pod(ephemeral=({"name": "dbg", "image": "busybox:1"},))
    new = copy.deepcopy(old)
    assert evaluation.is_significant_pod_update(new, old) is False
    new["spec"]["ephemeralContainers"][0]["image"] = "busybox:2"
    assert evaluation.is_significant_pod_update(new, old) is True


def test_render_orders_findings_as_upstream_and_names_mode_and_version() -> None:
    group = registry.REGISTRY.groups["pod-security"]
    apes = registry.Finding(
        registry.REGISTRY.policies["pod-security.allowPrivilegeEscalation"],
        (model.Violation("allowPrivilegeEscalation != false", 'container "a" must ...'),),
    )
    priv = registry.Finding(
        registry.REGISTRY.policies["pod-security.privileged"],
        (model.Violation("privileged", 'container "a" must not ...'),),
    )
    params = pod_security.LevelVersion(level="restricted", version="v1.30")
    assert group.render([apes, priv], "enforce", params) == (
        'violates PodSecurity "restricted:v1.30": privileged (container "a" must not ...), '
        'allowPrivilegeEscalation != false (container "a" must ...)'
    )
    assert group.render([apes], "audit", pod_security.LevelVersion(level="restricted")) == (
        'would violate PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "a" must ...)'
    )


# --- settings ----------------------------------------------------------------------------------------


def test_modes_yield_enforce_warn_and_audit_levels() -> None:
    conf = pod_security.PodSecuritySettings.model_validate(
        {
            "level": "baseline",
            "version": "v1.30",
            "warn": {"level": "restricted"},
            "audit": {"level": "restricted", "version": "v1.29"},
        }
    )
    assert conf.workloadMode == "warn"
    assert [(m, p.level, p.version) for m, p in pod_security.modes(conf)] == [
        ("enforce", "baseline", "v1.30"),
        ("warn", "restricted", "latest"),
        ("audit", "restricted", "v1.29"),
    ]
    assert [m for m, _ in pod_security.modes(pod_security.PodSecuritySettings())] == ["enforce"]


@pytest.mark.parametrize(
    ("section", "error"),
    [
        (
            {"version": "1.30"},
            'version must be "latest" or "v1.N" (a minor without leading zeros, e.g. "v1.30"); got \'1.30\'',
        ),
        ({"version": "v1.030"}, "got 'v1.030'"),
        ({"version": "v2.1"}, "got 'v2.1'"),
        ({"warn": {"level": "restricted", "version": "newest"}}, "got 'newest'"),
        ({"level": "strict"}, "Input should be 'privileged', 'baseline' or 'restricted'"),
        ({"warn": {"version": "latest"}}, "Field required"),
        ({"audit": {"level": "restricted", "extra": 1}}, "Extra inputs are not permitted"),
    ],
)
def test_settings_validation_errors_are_precise(section: dict[str, Any], error: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        pod_security.PodSecuritySettings.model_validate(section)
    assert error in str(caught.value)


def test_version_parser_follows_upstream_rules() -> None:
    assert levels.parse_version("latest") is None
    assert levels.parse_version("v1.0") == 0
    assert levels.parse_version("v1.37") == 37
    for bad in ("v1.", "v1.01", "1.30", "v1.30.1", "V1.30", ""):
        with pytest.raises(levels.VersionError):
            levels.parse_version(bad)
    with pytest.raises(ValueError, match="level must be one of privileged, baseline, restricted"):
        pod_security.evaluate(pod(), level="strict")


def _own_catalog() -> registry.Registry:
    cat = registry.Registry()
    cat.add_group(registry.REGISTRY.groups["pod-security"])
    for policy in registry.REGISTRY.in_group("pod-security"):
        cat.add_policy(policy)
    return cat


# What the shipped policies/10-pod-security.yaml sets (baseline enforced, restricted warned, workloads
# only warned, kube-system excluded) is pinned by policies/tests/pod-security-test.yaml, which a user
# changing that file updates with `python -m webhook test --update policies/tests`.
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
podSecurity:
  mode: enforce
  level: baseline
  warn: {level: restricted}
  audit: {level: restricted}
  workloadMode: "off"
  scope: {excludeNamespaces: [kube-system]}
"""


def test_policy_file_error_names_file_line_and_rule(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n"
        'podSecurity:\n  level: baseline\n  version: "1.30"\n'
    )
    with pytest.raises(errors.PolicyConfigError) as caught:
        files.load([tmp_path], catalog=_own_catalog())
    assert str(caught.value) == (
        f"{tmp_path / 'p.yaml'}:5: podSecurity.version: Value error, "
        'version must be "latest" or "v1.N" (a minor without leading zeros, e.g. "v1.30"); got \'1.30\''
    )


# --- through the engine: Pods enforced, workloads only warned at the warn level -------------------------------------------


def test_engine_denies_pod_and_warns_for_deployment(tmp_path: Path) -> None:
    (tmp_path / "pod-security.yaml").write_text(POLICY)
    config = files.load([tmp_path / "pod-security.yaml"], catalog=_own_catalog())
    policies = engine.PolicySet(config, catalog=_own_catalog())
    bad = pod(container("app", privileged=True))
    denied = engine.evaluate(
        policies, bad, model.ReviewContext(kind="Pod", namespace="team-a"), chain="validating"
    )
    assert not denied.allowed and denied.code == 403
    assert denied.message == B + 'privileged (container "app" must not set securityContext.privileged=true)'
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {}, "spec": bad["spec"]}},
    }
    warned = engine.evaluate(
        policies, dep, model.ReviewContext(kind="Deployment", namespace="team-a"), chain="validating"
    )
    assert warned.allowed
    # Upstream parity: only the restricted warn pass speaks for workload templates.
    assert len(warned.warnings) == 1
    assert warned.warnings[0].startswith(
        'would violate PodSecurity "restricted:latest": privileged (container "app" must not set '
        "securityContext.privileged=true)"
    )
    skipped = engine.evaluate(
        policies, bad, model.ReviewContext(kind="Pod", namespace="kube-system"), chain="validating"
    )
    assert skipped.allowed and not skipped.warnings


# --- performance --------------------------------------------------------------------------------------


def test_bench_psa_restricted_typical_pod(benchmark: Any) -> None:
    typical = pod(
        {
            **container("app"),
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
        },
        container("proxy"),
        volumes=[
            {"name": "config", "configMap": {"name": "app"}},
            {"name": "token", "projected": {"sources": []}},
        ],
    )
    assert benchmark(pod_security.evaluate, typical, level="restricted") == []


def test_the_container_walk_follows_edits_without_being_told() -> None:
    from webhook.policy import workloads
    from webhook.validators.pod_security import base as pss_base

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "x"}]}}
    target = workloads.pod_target(pod, "Pod")
    assert target is not None
    assert [c["name"] for _, _, c in pss_base.bind(target)] == ["a"]
    pod["spec"]["containers"].append({"name": "b", "image": "x"})  # an edit in place
    assert [c["name"] for _, _, c in pss_base.containers(target.spec)] == ["a", "b"]
    pod["spec"]["containers"][0] = {"name": "c", "image": "x"}  # a container replaced
    assert [c["name"] for _, _, c in pss_base.bind(target)] == ["c", "b"]
