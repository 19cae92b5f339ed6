"""deploy/components/audit, rendered with ``kubectl kustomize`` from an overlay next to the base.

The component is not in any shipped overlay (it needs the report CRDs, which it does not ship), so
the test writes the overlay a user would: the base plus the component.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook import catalog, cli, config
from webhook.audit import reports, targets

REPO = Path(__file__).resolve().parents[1]
OVERLAY = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
components:
  - ../../components/audit
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    root = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(REPO / "deploy", root)
    overlay = root / "overlays" / "with-audit"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(OVERLAY)
    done = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def named(objects: list[dict[str, Any]], kind: str, name: str = "admission-webhook-audit") -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_component_adds_a_cronjob_its_account_and_its_rbac(rendered: list[dict[str, Any]]) -> None:
    added = Counter(o["kind"] for o in rendered if o["metadata"]["name"] == "admission-webhook-audit")
    assert added == Counter({"CronJob": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1})
    assert not [o for o in rendered if o["kind"] == "CustomResourceDefinition"]  # CRDs come from elsewhere


def test_the_cronjob_runs_hourly_one_at_a_time_with_the_webhooks_policies(rendered: list[dict[str, Any]]) -> None:
    cron = named(rendered, "CronJob")
    spec = cron["spec"]
    assert cron["metadata"]["namespace"] == "admission-webhook"
    assert spec["schedule"] == "17 * * * *" and spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] < 3600
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:4] == ["audit", "--policies", "/policies", "--apply"]
    assert container["args"][container["args"].index("--fail-on") + 1] == "none"
    assert set(container["resources"]) == {"requests", "limits"}
    assert set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == named(rendered, "ServiceAccount")["metadata"]["name"]
    # The same ConfigMap as the webhook's Deployment: kustomize gave both its hashed name.
    configmap = next(o for o in rendered if o["kind"] == "ConfigMap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert configmap["metadata"]["name"].startswith("admission-webhook-policies-")


def test_rbac_grants_listing_exactly_what_the_default_policies_check_and_writing_reports(
    rendered: list[dict[str, Any]],
) -> None:
    role = named(rendered, "ClusterRole")
    read = {(group, resource) for rule in role["rules"] if set(rule["verbs"]) == {"list", "watch"}
            for group in rule["apiGroups"] for resource in rule["resources"]}
    wanted, wildcards = targets.of([catalog.load([config.DEFAULT_POLICIES])])
    assert not wildcards
    assert read == {(t.group, t.resource) for t in wanted} | {("", "namespaces")}
    write = {(group, resource): set(rule["verbs"]) for rule in role["rules"] if "patch" in rule["verbs"]
             for group in rule["apiGroups"] for resource in rule["resources"]}
    assert write == {(api.group, plural): {"get", "list", "create", "patch", "delete"}
                     for api in reports.APIS.values() for plural in (api.plural, api.cluster_plural)}
    everything = [x for rule in role["rules"] for x in (*rule["apiGroups"], *rule["resources"], *rule["verbs"])]
    assert "*" not in everything and "secrets" not in everything
    binding = named(rendered, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "admission-webhook-audit",
                                    "namespace": "admission-webhook"}]


def test_the_rendered_install_passes_its_own_audit(
    rendered: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "install.yaml"
    path.write_text(yaml.safe_dump_all(rendered))
    code = cli.main(["audit", "--from", str(path), "--no-progress", "-o", "wide"])
    out, _ = capsys.readouterr()
    assert code == 0, out
