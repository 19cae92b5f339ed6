"""``python -m webhook policies``: what a policy set will do, before serving it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import conftest
from webhook import cli

REPO = conftest.REPO


# Its own policy file, so the listing checked below does not move when policies/ is edited.
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
podSecurity:
  mode: enforce
  level: baseline
  warn: {level: restricted}
  audit: {level: restricted}
rbac: {mode: warn}
"""


def test_text_lists_groups_and_the_modes_each_policy_runs_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    assert cli.main(["policies", "--policies", str(tmp_path / "policy.yaml"),
                     "--set", "rbac.policies[rbac.wildcards].mode=audit"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "/validate/pod-security  (validating, section podSecurity, mode enforce)"
    privileged = next(line for line in lines if line.lstrip().startswith("pod-security.privileged "))
    restricted = next(line for line in lines if line.lstrip().startswith("pod-security.runAsNonRoot "))
    assert privileged.split()[1] == "enforce+warn+audit"  # baseline: enforced, and in the warn/audit pass
    assert restricted.split()[1] == "warn+audit"  # restricted only warns and audits by default
    wildcards = next(line for line in lines if line.lstrip().startswith("rbac.wildcards "))
    assert wildcards.split()[1] == "audit"


def test_json_and_admission_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policies", "-o", "json", "--policies", str(REPO / "policies" / "examples" / "cel" /
                                                                    "replica-limit")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(group["mode"] == "off" for group in data["groups"])  # only CEL documents in that directory
    assert data["admissionPolicies"] == [{
        "policy": "replica-limit", "binding": "replica-limit", "failurePolicy": "Fail",
        "validationActions": ["Deny"],
        "source": data["admissionPolicies"][0]["source"],
    }]
    assert data["admissionPolicies"][0]["source"].startswith(str(REPO / "policies/examples/cel/replica-limit"))


def test_a_misspelt_id_exits_2_naming_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policies", "--set", "rbac.policies[rbac.wildcard].mode=off"]) == 2
    assert capsys.readouterr().err == (
        "error: --set 'rbac.policies[rbac.wildcard].mode=off': rbac.policies: unknown policy id 'rbac.wildcard' "
        "in group 'rbac' (did you mean 'rbac.wildcards'?)\n")
