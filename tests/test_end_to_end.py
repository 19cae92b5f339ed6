"""The deploy manifests, the server and the API-server emulator together, as a cluster would run them:
the static-certs overlay rendered by kustomize (caBundle from the generated CA), the real server
serving that certificate, and ``simulate`` dispatching a Pod through every registered webhook."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import conftest, serve_support
from webhook import certs, cli

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def _render_webhooks(tmp_path: Path) -> tuple[Path, Path]:
    deploy = tmp_path / "deploy"
    shutil.copytree(conftest.REPO / "deploy", deploy, ignore=shutil.ignore_patterns("tls.*", "ca.*"))
    cert_dir = deploy / "components" / "static-certs" / "certs"
    certs.ensure(cert_dir, service="admission-webhook", namespace="admission-webhook", hosts=["localhost"],
                 ips=["127.0.0.1"])
    rendered = subprocess.run(["kubectl", "kustomize", str(deploy / "overlays" / "static-certs")],
                              capture_output=True, text=True, check=True).stdout
    hooks = [d for d in yaml.safe_load_all(rendered) if d and d["kind"].endswith("WebhookConfiguration")]
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(yaml.safe_dump_all(hooks))
    return webhooks, cert_dir


def _simulate(webhooks: Path, obj: dict[str, Any], port: int, tmp_path: Path, capsys: Any, *extra: str) -> tuple[int, Any]:
    path = tmp_path / f"{obj['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(obj))
    capsys.readouterr()
    code = cli.main(["simulate", "--webhooks", str(webhooks), "--object", str(path), "--output", "json",
                     "--service-address", f"admission-webhook/admission-webhook=127.0.0.1:{port}", *extra])
    return code, json.loads(capsys.readouterr().out)


# The server runs this policy file rather than the shipped one, so what the test checks (every
# registered webhook reaches its group) does not move when policies/ is edited.
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
podSecurity: {mode: enforce, level: baseline, version: latest}
defaults: {mode: enforce}
downwardAPI: {mode: enforce}
"""


def test_rendered_overlay_registers_every_group_against_the_real_server(tmp_path: Path, capsys: Any) -> None:
    webhooks, cert_dir = _render_webhooks(tmp_path)
    port = serve_support.free_port()
    (tmp_path / "policy.yaml").write_text(POLICY)
    process = serve_support.start(cert_dir, port, log=tmp_path / "server.log", policies=tmp_path / "policy.yaml")
    with serve_support.reaped(process):
        serve_support.wait_ready(f"https://127.0.0.1:{port}", cert_dir, process)

        bad = conftest.pod("privileged", containers=[
            {"name": "app", "image": "nginx:1.27", "securityContext": {"privileged": True}}])
        bad["metadata"]["namespace"] = "team-a"
        code, result = _simulate(webhooks, bad, port, tmp_path, capsys, "--user", "alice")
        assert code == 1 and result["admitted"] is False
        assert result["error"].startswith(
            'admission webhook "pod-security.admission.dev" denied the request: violates PodSecurity '
            '"baseline:latest": privileged (container "app" must not set securityContext.privileged=true)')
        first: dict[str, str] = {}
        for call in result["webhooks"]:
            first.setdefault(call["name"], call["outcome"])  # round 0; reinvocations come after
        assert first["defaults.admission.dev"] == "patched"
        assert first["downward-api.admission.dev"] == "patched"
        assert first["pod-security.admission.dev"] == "denied"

        good = conftest.pod("web")
        good["metadata"]["namespace"] = "team-a"
        code, result = _simulate(webhooks, good, port, tmp_path, capsys, "--user", "alice")
        assert code == 0 and result["admitted"] is True
        env = {e["name"] for e in result["object"]["spec"]["containers"][0]["env"]}
        assert {"POD_NAME", "POD_NAMESPACE", "NODE_NAME"} <= env  # the mutations reached the object

        # The webhook's own namespace is never sent to it, so it can always restart itself.
        own = conftest.pod("own", containers=[{"name": "app", "image": "x", "securityContext": {"privileged": True}}])
        own["metadata"]["namespace"] = "admission-webhook"
        code, result = _simulate(webhooks, own, port, tmp_path, capsys, "--namespace-labels",
                                 "kubernetes.io/metadata.name=admission-webhook")
        assert code == 0 and all(w["outcome"] == "skipped" for w in result["webhooks"])
