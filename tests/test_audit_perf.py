"""The audit's budgets: evaluation throughput in process, and memory bounded whatever the dump's size.

Throughput: at least 3,000 typical Pods per second on one core (the Pod of
:mod:`tests.test_chain_benchmarks`, evaluated as created now, with its Namespace). Measured in CPU
time of the test process, best of three rounds, so a busy neighbour on a shared machine does not
fail the test.

Memory: a 20,000-object YAML List (about 55 MB) read through ``audit --from`` in a subprocess, whose
peak RSS (its own ``VmHWM``) must stay under 150 MB. Loading that file whole would take several
times that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import test_audit_dumps as dumps
from tests.test_chain_benchmarks import typical_pod
from webhook import catalog, config
from webhook.audit import evaluate, model

REPO = Path(__file__).resolve().parents[1]
PODS_PER_SECOND = 3000
MAX_RSS_MB = 150


def pods_per_second(count: int, rounds: int) -> list[float]:
    """Typical Pods (``count`` distinct ones) the audit evaluates per second of this process's CPU
    time, once per round. Also what ``make bench`` reports (``bench.__main__.audit_micro``)."""
    evaluator = evaluate.Evaluator(catalog.load([config.DEFAULT_POLICIES]))
    namespace = model.Namespace.of(dumps.namespace("shop"))
    pods = []
    for index in range(count):
        pod = typical_pod()
        pod["metadata"].update(name=f"api-7d4f9-{index:05d}", uid=dumps.uid("pod", str(index)))
        pods.append(model.Item(pod))
    rates = []
    for _ in range(rounds):
        # CPU time of this process: "per core", and blind to other processes sharing the machine.
        started = time.process_time()
        for item in pods:
            evaluator.evaluate(item, namespace)
        rates.append(len(pods) / (time.process_time() - started))
    return rates


@pytest.mark.slow  # a throughput figure: `make bench` reports it; here it runs with -m slow
def test_typical_pods_are_evaluated_at_3000_per_second_or_more() -> None:
    rates = pods_per_second(500, 3)
    print(f"audit evaluation: {max(rates):,.0f} typical Pods/s (rounds: {', '.join(f'{r:,.0f}' for r in rates)})")
    assert max(rates) >= PODS_PER_SECOND


# The audit run as ``python -m webhook audit`` would run it, reporting its own peak RSS at exit.
# VmHWM is the high-water mark of this process's memory since exec; getrusage's ru_maxrss is not
# usable here: on Linux a child's starts from its parent's (the test runner's) at fork.
PEAK_REPORTING_AUDIT = """
import atexit, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("peak-rss-kb " + line.split()[1] + "\\n")
atexit.register(report)
from webhook import cli
sys.argv[0] = "admission-webhook"
code = cli.main(sys.argv[1:])
sys.stdout.flush()
raise SystemExit(code)
"""


def test_a_20000_object_yaml_dump_is_audited_in_bounded_memory(tmp_path: Path) -> None:
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc (Linux) to read the process's peak RSS")
    path = dumps.many_pods_yaml(tmp_path / "bulk.yaml", 19_999)  # and its Namespace: 20,000 objects
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_REPORTING_AUDIT, "audit", "--from", str(path), "--no-progress", "--fail-on", "none"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(tmp_path)},
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "20,000 objects evaluated: 19,999 reported" in done.stdout
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("peak-rss-kb ")]
    peak = int(line.split()[1]) / 1024
    print(f"audit --from {path.stat().st_size / 1e6:.0f} MB YAML, 20,000 objects: {elapsed:.1f} s, "
          f"peak RSS {peak:.0f} MB")
    assert peak < MAX_RSS_MB


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_reading_a_dump_does_not_hold_it(tmp_path: Path, kind: str) -> None:
    """The first pass keeps Namespaces only; objects go to the spool files one line each."""
    objects = dumps.cluster(shops=3)
    path = (dumps.write_yaml if kind == "yaml" else dumps.write_json)(tmp_path / f"dump.{kind}", objects)
    from webhook.audit import dump

    with dump.Source([str(path)], spool_dir=str(tmp_path)) as source:
        source.prepare()
        assert source.total == len(objects)
        assert [item.object for item in source.items()] == sorted(objects, key=lambda o: model.rank(o["kind"]))
