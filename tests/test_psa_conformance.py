"""Upstream Pod Security admission fixtures (v1.37) evaluated by the pod-security group: 100% agreement.

Each entry of ``shared/conformance/psa/index.json`` (upstream layout: level, version, pass/fail) and
``index_derived.json`` (cross-level implications) is evaluated at the entry's level and version; a
``deny`` must produce a message containing upstream's asserted substring. Derived entries carry no
substring of their own: they use the one upstream asserts for the same check in ``index.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.validators import pod_security

PSA = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "psa"

if not (PSA / "index.json").is_file():
    pytest.skip(f"conformance corpus not found at {PSA}", allow_module_level=True)


def _load(name: str) -> list[dict[str, Any]]:
    path = PSA / name
    return json.loads(path.read_text()) if path.is_file() else []


PRIMARY = _load("index.json")
DERIVED = _load("index_derived.json")
SUBSTRING_BY_CHECK = {
    entry["check"]: entry["expect_reason_substring"]
    for entry in PRIMARY
    if entry["expect"] == "deny"
    and entry.get("expect_reason_substring")
    and not entry.get("enforced_by_check")
}


def _pod(entry: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PSA / entry["file"]).read_text())
    return loaded


def _expected_substring(entry: dict[str, Any]) -> str:
    return str(
        entry.get("expect_reason_substring") or SUBSTRING_BY_CHECK.get(entry["check"]) or entry["check"]
    )


def _id(entry: dict[str, Any]) -> str:
    return f"{entry['level']}@{entry['version']}:{entry['file']}"


def test_corpus_is_complete() -> None:
    # 148 upstream fixtures + 91 derived expectations, as the corpus README documents.
    assert len(PRIMARY) == 148
    assert len(DERIVED) == 91


@pytest.mark.parametrize("entry", PRIMARY + DERIVED, ids=_id)
def test_fixture_verdict_matches_upstream(entry: dict[str, Any]) -> None:
    msg = pod_security.message(_pod(entry), level=entry["level"], version=entry["version"])
    if entry["expect"] == "allow":
        assert msg is None
    else:
        assert msg is not None, "expected a denial"
        assert msg.startswith(f'violates PodSecurity "{entry["level"]}:{entry["version"]}": ')
        assert _expected_substring(entry) in msg


@pytest.mark.parametrize("entry", [e for e in PRIMARY if e["expect"] == "deny"], ids=_id)
def test_fixture_in_deployment_template_reports_template_paths(entry: dict[str, Any]) -> None:
    # Upstream also wraps every fixture in a Deployment: the same findings, with paths into the template.
    pod = _pod(entry)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "test"},
        "spec": {
            "template": {
                "metadata": copy.deepcopy(pod.get("metadata", {})),
                "spec": copy.deepcopy(pod["spec"]),
            }
        },
    }
    as_pod = pod_security.evaluate(pod, level=entry["level"], version=entry["version"])
    as_template = pod_security.evaluate(deployment, level=entry["level"], version=entry["version"])
    assert [v.text() for v in as_template] == [v.text() for v in as_pod]
    for found in as_template:
        assert found.path.startswith(("spec.template.spec.", "spec.template.metadata."))


# Our reading of the policy code for what upstream leaves undetermined (corpus README): at baseline,
# the restricted-only fail fixtures pass, except these three, which also break a baseline check.
ALSO_BASELINE = {
    "restricted/v1.37/fail/seccompprofile_restricted1.yaml": "seccompProfile",
    "restricted/v1.37/fail/seccompprofile_restricted4.yaml": "seccompProfile",
    "restricted/v1.37/fail/restrictedvolumes19.yaml": "hostPath volumes",
}


@pytest.mark.parametrize(
    "entry",
    [e for e in PRIMARY if e["expect"] == "deny" and e.get("check_level") == "restricted"],
    ids=_id,
)
def test_restricted_only_failures_at_baseline(entry: dict[str, Any]) -> None:
    msg = pod_security.message(_pod(entry), level="baseline", version=entry["version"])
    if entry["file"] in ALSO_BASELINE:
        assert msg is not None and ALSO_BASELINE[entry["file"]] in msg
    else:
        assert msg is None
