"""Defaults: each mutation's exact patch on Pods and templates, and the rules that keep user values."""

from __future__ import annotations

import fractions
import time
from typing import Any

import pydantic
import pytest

from tests import mutate_support as ms
from webhook import quantity
from webhook.mutators import defaults

APP = {"name": "app", "image": "nginx:1.27"}


def params(**body: Any) -> defaults.DefaultsSettings:
    return defaults.DefaultsSettings.model_validate(body)


# -- labels / annotations ---------------------------------------------------------------------------


def test_labels_add_a_whole_metadata_map_to_a_template_without_metadata() -> None:
    obj = ms.deployment({"containers": [APP]})
    ops, _ = ms.run_one(defaults.default_labels, obj, params(labels={"team": "web"}))
    assert ops == [{"op": "add", "path": "/spec/template/metadata", "value": {"labels": {"team": "web"}}}]


def test_labels_keep_the_users_value_and_escape_pointer_tokens() -> None:
    obj = ms.pod({"containers": [APP]}, labels={"team": "mine"}, annotations={"a": "1"})
    ops, _ = ms.run_one(
        defaults.default_labels,
        obj,
        params(labels={"team": "web", "tier": "front"}, annotations={"example.com/owner~x": "ops"}),
    )
    assert ops == [
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
        {"op": "add", "path": "/metadata/annotations/example.com~1owner~0x", "value": "ops"},
    ]


def test_labels_do_nothing_when_every_key_is_present() -> None:
    obj = ms.deployment({"containers": [APP]}, template_meta={"labels": {"team": "x"}})
    assert ms.run_one(defaults.default_labels, obj, params(labels={"team": "web"}))[0] == []


def test_labels_written_as_null_are_replaced_by_the_defaults() -> None:
    # `labels: null` reads as absent to the API server; the default used to fail (None.update).
    obj = ms.pod({"containers": [APP]})
    obj["metadata"]["labels"] = None
    ops, _ = ms.run_one(defaults.default_labels, obj, params(labels={"team": "web"}))
    assert ops == [{"op": "replace", "path": "/metadata/labels", "value": {"team": "web"}}]


# -- resources --------------------------------------------------------------------------------------

RESOURCES = {"resources": [{"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}]}


def test_resources_are_added_whole_when_the_container_has_none() -> None:
    obj = ms.pod({"initContainers": [{"name": "init", "image": "busybox:1"}], "containers": [APP]})
    ops, _ = ms.run_one(defaults.default_resources, obj, params(**RESOURCES))
    value = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    assert ops == [
        {"op": "add", "path": "/spec/initContainers/0/resources", "value": value},
        {"op": "add", "path": "/spec/containers/0/resources", "value": value},
    ]


def test_resources_fill_only_the_missing_keys() -> None:
    obj = ms.pod({"containers": [{**APP, "resources": {"requests": {"cpu": "1"}}}]})
    ops, _ = ms.run_one(defaults.default_resources, obj, params(**RESOURCES))
    assert ops == [
        {"op": "add", "path": "/spec/containers/0/resources/requests/memory", "value": "64Mi"},
        {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"memory": "256Mi"}},
    ]


def test_a_request_is_not_defaulted_beside_a_user_limit() -> None:
    # The API server copies a lone limit into the request: a smaller default would change the QoS.
    obj = ms.pod({"containers": [{**APP, "resources": {"limits": {"memory": "128Mi"}}}]})
    ops, _ = ms.run_one(defaults.default_resources, obj, params(**RESOURCES))
    assert ops == [{"op": "add", "path": "/spec/containers/0/resources/requests", "value": {"cpu": "50m"}}]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("raise", [{"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"memory": "2Gi"}}]),
        ("skip", []),
    ],
)
def test_a_default_limit_below_the_users_request_is_raised_or_skipped(mode: str, expected: list[Any]) -> None:
    obj = ms.pod({"containers": [{**APP, "resources": {"requests": {"memory": "2Gi", "cpu": "100m"}}}]})
    ops, mutated = ms.run_one(defaults.default_resources, obj, params(**RESOURCES, limitBelowRequest=mode))
    assert ops == expected


def test_an_unreadable_user_request_gets_no_limit_beside_it() -> None:
    obj = ms.pod({"containers": [{**APP, "resources": {"requests": {"memory": "lots", "cpu": "1"}}}]})
    assert ms.run_one(defaults.default_resources, obj, params(**RESOURCES))[0] == []


def test_a_hostile_request_is_unreadable_and_judged_in_linear_time() -> None:
    # 30,000 digits and a bad suffix took a backtracking regex ~19 s; parsing must not block the loop.
    hostile = "1" * 30_000 + "x"
    obj = ms.pod({"containers": [{**APP, "resources": {"requests": {"memory": hostile}}}]})
    started = time.perf_counter()
    ops, _ = ms.run_one(defaults.default_resources, obj, params(**RESOURCES))
    assert time.perf_counter() - started < 0.5
    # The cpu request is still defaulted; no memory limit is derived from the unreadable request.
    assert ops == [{"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "50m"}]


def test_a_request_longer_than_64_characters_gets_no_limit_beside_it() -> None:
    longest = "0" * 61 + "1Gi"  # 64 characters: still read
    assert len(longest) == 64 and quantity.lenient(longest) == 2**30
    too_long = "0" + longest
    assert quantity.lenient(too_long) is None
    obj = ms.pod({"containers": [{**APP, "resources": {"requests": {"memory": too_long, "cpu": "1"}}}]})
    assert ms.run_one(defaults.default_resources, obj, params(**RESOURCES))[0] == []
    obj = ms.pod({"containers": [{**APP, "resources": {"requests": {"memory": longest, "cpu": "1"}}}]})
    assert ms.run_one(defaults.default_resources, obj, params(**RESOURCES))[0] == [
        {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"memory": longest}}]


def test_resource_defaults_are_chosen_by_namespace_glob_first_match_wins() -> None:
    body = {
        "resources": [
            {"namespaces": ["team-*"], "requests": {"cpu": "200m"}},
            {"namespaces": ["*"], "requests": {"cpu": "10m"}},
        ]
    }
    obj = ms.pod({"containers": [APP]}, namespace="team-a")
    ops, _ = ms.run_one(
        defaults.default_resources, obj, params(**body), ctx=ms.context("Pod", namespace="team-a")
    )
    assert ops == [
        {"op": "add", "path": "/spec/containers/0/resources", "value": {"requests": {"cpu": "200m"}}}
    ]
    ops, _ = ms.run_one(
        defaults.default_resources, obj, params(**body), ctx=ms.context("Pod", namespace="prod")
    )
    assert ops == [
        {"op": "add", "path": "/spec/containers/0/resources", "value": {"requests": {"cpu": "10m"}}}
    ]
    only_teams = {"resources": body["resources"][:1]}
    assert (
        ms.run_one(
            defaults.default_resources, obj, params(**only_teams), ctx=ms.context("Pod", namespace="prod")
        )[0]
        == []
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("1Gi", str(2**30)),
        ("2e3", "2000"),
        ("1.5k", "1500"),
        ("3", "3"),
        (".5", "0.5"),
        ("1E", "1000000000000000000"),
        ("12Mi", str(12 * 2**20)),
        ("10u", "0.00001"),
    ],
)
def test_quantities_parse_like_the_api_server(text: str, value: str) -> None:
    parsed = quantity.lenient(text)
    assert parsed is not None and parsed == fractions.Fraction(value)


def test_bare_yaml_numbers_are_quantities() -> None:
    assert quantity.lenient(3) == 3
    assert quantity.lenient(0.5) == fractions.Fraction(1, 2)


@pytest.mark.parametrize("text", ["lots", "1GB", "", "1e", "--1", True, "1e1.5", "١"])
def test_malformed_quantities_are_none(text: Any) -> None:
    assert quantity.lenient(text) is None


def test_a_default_request_above_its_default_limit_is_a_config_error() -> None:
    with pytest.raises(
        pydantic.ValidationError, match="default request memory=1Gi is above the default limit 512Mi"
    ):
        params(resources=[{"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}])
    with pytest.raises(pydantic.ValidationError, match="'ten' is not a Kubernetes quantity"):
        params(resources=[{"requests": {"cpu": "ten"}}])


# -- imagePullPolicy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("registry.local:5000/team/app", "Always"),
        ("registry.local:5000/team/app:1.0", None),
        ("nginx:1.27", None),
        ("nginx@sha256:" + "a" * 64, None),
        ("nginx:latest@sha256:" + "a" * 64, None),
    ],
)
def test_image_pull_policy_is_always_for_moving_tags(image: str, policy: str | None) -> None:
    obj = ms.pod({"containers": [{"name": "app", "image": image}]})
    ops, _ = ms.run_one(defaults.default_image_pull_policy, obj, params())
    expected = (
        [{"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": policy}] if policy else []
    )
    assert ops == expected


def test_image_pull_policy_never_overrides_and_can_default_pinned_images() -> None:
    obj = ms.pod(
        {
            "containers": [
                {"name": "a", "image": "nginx", "imagePullPolicy": "Never"},
                {"name": "b", "image": "nginx:1.27"},
            ]
        }
    )
    ops, _ = ms.run_one(
        defaults.default_image_pull_policy, obj, params(imagePullPolicy={"other": "IfNotPresent"})
    )
    assert ops == [{"op": "add", "path": "/spec/containers/1/imagePullPolicy", "value": "IfNotPresent"}]


# -- securityContext --------------------------------------------------------------------------------

HARDENED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_security_context_hardens_a_plain_pod() -> None:
    obj = ms.pod({"initContainers": [{"name": "init", "image": "busybox:1"}], "containers": [APP]})
    ops, _ = ms.run_one(defaults.default_security_context, obj, params())
    # Ops follow the object's key order: existing lists first, the new pod-level map last.
    assert ops == [
        {"op": "add", "path": "/spec/initContainers/0/securityContext", "value": HARDENED_CONTAINER},
        {"op": "add", "path": "/spec/containers/0/securityContext", "value": HARDENED_CONTAINER},
        {
            "op": "add",
            "path": "/spec/securityContext",
            "value": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        },
    ]


def test_security_context_fills_only_unset_fields() -> None:
    spec = {
        "securityContext": {"runAsNonRoot": False, "fsGroup": 2000},
        "containers": [
            {
                **APP,
                "securityContext": {
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["NET_BIND_SERVICE"]},
                },
            }
        ],
    }
    ops, _ = ms.run_one(defaults.default_security_context, ms.pod(spec), params())
    assert ops == [
        {"op": "add", "path": "/spec/securityContext/seccompProfile", "value": {"type": "RuntimeDefault"}},
        {"op": "add", "path": "/spec/containers/0/securityContext/capabilities/drop", "value": ["ALL"]},
    ]


def test_privileged_containers_are_left_alone_and_sys_admin_keeps_escalation() -> None:
    spec = {
        "containers": [
            {"name": "priv", "image": "x:1", "securityContext": {"privileged": True}},
            {"name": "admin", "image": "x:1", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
        ]
    }
    ops, _ = ms.run_one(defaults.default_security_context, ms.pod(spec), params())
    assert ops[:-1] == [
        {"op": "add", "path": "/spec/containers/1/securityContext/capabilities/drop", "value": ["ALL"]},
    ]


def test_run_as_non_root_is_skipped_when_a_container_asks_for_root() -> None:
    spec = {"containers": [{**APP, "securityContext": {"runAsUser": 0}}]}
    ops, _ = ms.run_one(defaults.default_security_context, ms.pod(spec), params())
    assert ops == [
        {"op": "add", "path": "/spec/containers/0/securityContext/allowPrivilegeEscalation", "value": False},
        {"op": "add", "path": "/spec/containers/0/securityContext/capabilities", "value": {"drop": ["ALL"]}},
        {
            "op": "add",
            "path": "/spec/securityContext",
            "value": {"seccompProfile": {"type": "RuntimeDefault"}},
        },
    ]


def test_seccomp_is_skipped_beside_the_legacy_annotation() -> None:
    obj = ms.pod(
        {"containers": [APP]}, annotations={"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
    )
    ops, _ = ms.run_one(defaults.default_security_context, obj, params())
    assert ops[-1] == {"op": "add", "path": "/spec/securityContext", "value": {"runAsNonRoot": True}}


@pytest.mark.parametrize(
    "spec_extra", [{"os": {"name": "windows"}}, {"nodeSelector": {"kubernetes.io/os": "windows"}}]
)
def test_windows_pods_get_no_linux_security_fields(spec_extra: dict[str, Any]) -> None:
    obj = ms.pod({"containers": [APP], **spec_extra})
    assert ms.run_one(defaults.default_security_context, obj, params())[0] == []


def test_security_context_parts_can_be_switched_off() -> None:
    body = {
        "securityContext": {
            "runAsNonRoot": None,
            "seccompProfile": None,
            "allowPrivilegeEscalation": None,
            "dropCapabilities": [],
        }
    }
    assert (
        ms.run_one(defaults.default_security_context, ms.pod({"containers": [APP]}), params(**body))[0] == []
    )


# -- pod-level scalars, tolerations, priority -------------------------------------------------------


def test_pod_level_scalars_are_set_only_when_absent() -> None:
    obj = ms.cronjob({"containers": [APP], "terminationGracePeriodSeconds": 5})
    body = params(automountServiceAccountToken=False, terminationGracePeriodSeconds=60)
    ops, _ = ms.run_one(defaults.default_service_account_token, obj, body)
    assert ops == [
        {
            "op": "add",
            "path": "/spec/jobTemplate/spec/template/spec/automountServiceAccountToken",
            "value": False,
        }
    ]
    assert ms.run_one(defaults.default_termination_grace_period, obj, body)[0] == []
    ops, _ = ms.run_one(defaults.default_termination_grace_period, ms.pod({"containers": [APP]}), body)
    assert ops == [{"op": "add", "path": "/spec/terminationGracePeriodSeconds", "value": 60}]


TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}


def test_tolerations_are_added_whole_or_appended_and_never_duplicated() -> None:
    body = params(tolerations=[TOLERATION])
    ops, _ = ms.run_one(defaults.default_tolerations, ms.pod({"containers": [APP]}), body)
    assert ops == [{"op": "add", "path": "/spec/tolerations", "value": [TOLERATION]}]
    other = {"key": "gpu", "operator": "Exists"}
    ops, _ = ms.run_one(
        defaults.default_tolerations, ms.pod({"containers": [APP], "tolerations": [other]}), body
    )
    assert ops == [{"op": "add", "path": "/spec/tolerations/-", "value": TOLERATION}]
    # The same toleration written without the (default) operator is already there.
    same = {k: v for k, v in TOLERATION.items() if k != "operator"}
    assert (
        ms.run_one(defaults.default_tolerations, ms.pod({"containers": [APP], "tolerations": [same]}), body)[
            0
        ]
        == []
    )


def test_a_toleration_with_exists_and_a_value_is_a_config_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="operator Exists must not set a value"):
        params(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}])


def test_priority_class_is_set_on_templates_but_not_on_pods_with_a_resolved_priority() -> None:
    body = params(priorityClassName="standard")
    ops, _ = ms.run_one(defaults.default_priority_class_name, ms.deployment({"containers": [APP]}), body)
    assert ops == [{"op": "add", "path": "/spec/template/spec/priorityClassName", "value": "standard"}]
    resolved = ms.pod({"containers": [APP], "priority": 0})
    assert ms.run_one(defaults.default_priority_class_name, resolved, body)[0] == []
    ops, _ = ms.run_one(defaults.default_priority_class_name, ms.pod({"containers": [APP]}), body)
    assert ops == [{"op": "add", "path": "/spec/priorityClassName", "value": "standard"}]
    chosen = ms.pod({"containers": [APP], "priorityClassName": "high"})
    assert ms.run_one(defaults.default_priority_class_name, chosen, body)[0] == []
