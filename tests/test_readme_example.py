"""The README's first example works as written: the review it shows gets the answer it shows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests import conftest
from webhook import config, server

README = (conftest.REPO / "README.md").read_text()


def _block(after: str, fence: str) -> str:
    start = README.index(after) + len(after)
    return README[start : README.index(fence, start)]


# The settings the README's example describes (the shipped defaults when it was written), so the
# README's text is checked whatever policies/ holds now; what the shipped policies answer for such a
# Pod is pinned by policies/tests/examples-test.yaml (privileged-pod.yaml).
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
podSecurity:
  mode: enforce
  level: baseline
  audit: {level: restricted}
securityContext:
  mode: warn
  policies:
    security-context.privileged: {mode: enforce}
"""


async def test_readme_curl_example_gets_the_documented_denial(aiohttp_client: Any, tmp_path: Path) -> None:
    review = json.loads(_block("cat > review.json <<'JSON'\n", "\nJSON\n"))
    documented = _block("the Pod Security part in the upstream format:\n\n```\n", "\n```").replace(";\n", "; ")
    (tmp_path / "policy.yaml").write_text(POLICY)
    app = server.build_app(config.ServeSettings(policies=(tmp_path / "policy.yaml",)))
    client = await aiohttp_client(app)
    resp = await client.post("/validate", data=json.dumps(review), headers={"Content-Type": "application/json"})
    assert resp.status == 200
    answer = (await resp.json())["response"]
    assert answer["allowed"] is False
    assert answer["status"]["message"] == documented
    assert re.match(r'would violate PodSecurity "restricted:latest": ', answer["auditAnnotations"]["pod-security-violations"])
