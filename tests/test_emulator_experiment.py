"""``experiment`` end to end on a one-webhook configuration: the real server, every fault, the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests import emulator_support as es
from webhook.commands import experiment

REPO = Path(__file__).resolve().parents[1]


def test_experiment_writes_report_chart_and_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = es.webhook("pod-security.admission.dev", path="/validate/pod-security")
    webhooks = es.write_yaml(tmp_path, es.configuration("ValidatingWebhookConfiguration", "exp", [hook]))
    parser = argparse.ArgumentParser()
    experiment.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "experiment",
            "--webhooks",
            str(webhooks),
            "--requests",
            "2",
            "--timeouts",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--policies",
            str(REPO / "policies"),
        ]
    )
    assert args.func(args) == 0
    results = {
        (r["failurePolicy"], r["fault"]): r
        for r in json.loads((tmp_path / "out" / "results.json").read_text())
    }
    assert len(results) == 16
    for fault in experiment.FAULTS:
        ignore, fail = results[("Ignore", fault)], results[("Fail", fault)]
        assert ignore["admitted"] == 2, fault
        broken = fault not in ("none", "slow-under")
        assert (fail["admitted"], fail["rejected"], ignore["failed_open"]) == (
            (0, 2, 2) if broken else (2, 0, 0)
        ), fault
    (refused,) = results[("Fail", "down")]["errors"]
    assert refused.startswith(
        'Internal error occurred: failed calling webhook "pod-security.admission.dev": failed to '
        'call webhook: Post "https://hooks.testing.svc:443/validate/pod-security?timeout=1s": '
        "dial tcp 127.0.0.1:"
    )
    assert refused.endswith(": connect: connection refused")
    # A delay past ?timeout= meets the server's own deadline (0.9 s of 1 s): it answers 504 in
    # time, which the API server reports as client-go words a 504, and failurePolicy decides.
    slow = results[("Fail", "slow-over")]
    assert min(slow["latency_ms"]) >= 900 and max(slow["latency_ms"]) < 1000
    assert list(slow["errors"]) == [
        'Internal error occurred: failed calling webhook "pod-security.admission.dev": failed to call webhook: '
        "the server was unable to return a response in the time allotted, but may still be processing the request"
    ]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| 1 | Ignore | http500 | 2 | 2 | 0 |" in report
    assert (tmp_path / "out" / "latency.png").read_bytes().startswith(b"\x89PNG")
    assert "wrote " in capsys.readouterr().out
