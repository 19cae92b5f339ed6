"""Every shipped policy survives wrongly typed fields: no policy may raise (which would turn into a
"policy failed to evaluate" answer) on a Pod whose fields hold lists, maps, numbers or nulls where
the schema says otherwise. The API server rejects such objects itself, but a webhook may see them
first (it runs before schema validation of some fields, and anyone can POST to it)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from tests import conftest
from webhook import catalog, engine, review
from webhook.policy import files

BAD: list[Any] = [None, 1, "x", True, [], {}, [1], ["x"], [None], [[]], {"a": 1}, [{"name": 1}], [{"name": []}]]
POD_SC = ["sysctls", "seccompProfile", "seLinuxOptions", "appArmorProfile", "windowsOptions", "runAsUser",
          "runAsNonRoot", "capabilities", "supplementalGroups"]
CONTAINER = ["securityContext", "resources", "env", "envFrom", "ports", "volumeMounts", "image", "name",
             "livenessProbe", "lifecycle", "imagePullPolicy"]
NESTED: list[dict[str, Any]] = [
    {"seccompProfile": {"type": "V", "localhostProfile": "V"}}, {"sysctls": [{"name": "V", "value": "V"}]},
    {"capabilities": {"add": "V", "drop": "V"}}, {"capabilities": {"add": ["V"], "drop": ["V"]}},
    {"seLinuxOptions": {"type": "V", "user": "V", "role": "V", "level": "V"}}, {"appArmorProfile": {"type": "V"}},
    {"windowsOptions": {"hostProcess": "V"}},
]


def _fill(template: Any, value: Any) -> Any:
    if template == "V":
        return value
    if isinstance(template, dict):
        return {k: _fill(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, value) for v in template]
    return template


def cases() -> Iterator[tuple[str, dict[str, Any]]]:
    for value in BAD:
        for field in ["securityContext", "volumes", "tolerations", "nodeSelector", "os", "initContainers",
                      "containers", "runtimeClassName", "hostUsers", "serviceAccountName", "priority"]:
            obj = conftest.pod()
            obj["spec"][field] = value
            yield f"spec.{field}={value!r}", obj
        for field in POD_SC:
            obj = conftest.pod()
            obj["spec"]["securityContext"] = {field: value}
            yield f"spec.securityContext.{field}={value!r}", obj
        for field in CONTAINER:
            obj = conftest.pod()
            obj["spec"]["containers"][0][field] = value
            yield f"containers[0].{field}={value!r}", obj
        for nested in NESTED:
            for where in ("pod", "container"):
                obj = conftest.pod()
                holder = obj["spec"] if where == "pod" else obj["spec"]["containers"][0]
                holder["securityContext"] = _fill(nested, value)
                yield f"{where} securityContext {nested} V={value!r}", obj
        obj = conftest.pod()
        obj["spec"]["containers"][0]["resources"] = {"requests": {"cpu": value}, "limits": {"memory": value}}
        yield f"resources={value!r}", obj
        obj = conftest.pod()
        obj["spec"]["volumes"] = [{"name": value, "hostPath": value}, {"name": "x", "emptyDir": value}]
        yield f"volumes={value!r}", obj
        obj = conftest.pod()
        obj["metadata"]["annotations"] = {"seccomp.security.alpha.kubernetes.io/pod": value} if value is not None else value
        yield f"annotations={value!r}", obj


@functools.cache
def default_policies() -> engine.PolicySet:
    return engine.PolicySet(files.load([conftest.REPO / "policies"]), catalog=catalog.REGISTRY)


@pytest.mark.parametrize("chain", ["validating", "mutating"])
def test_no_shipped_policy_raises_on_wrongly_typed_fields(chain: str) -> None:
    failed: dict[str, str] = {}
    for title, obj in cases():
        parsed = review.parse(conftest.admission_review(obj))
        outcome = engine.evaluate(default_policies(), parsed.object, parsed.context, chain=chain)  # type: ignore[arg-type]
        for policy in outcome.failed_policies:
            failed.setdefault(policy, title)
    assert failed == {}
