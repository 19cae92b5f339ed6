"""``experiment``: what failurePolicy does to clients when the webhook is down, slow or broken.

Runs the real server in-process (throwaway certificates, fault injection enabled, admin API on a
loopback port) and sends ``--requests`` admissions per scenario through the API-server emulator.
Scenarios are failurePolicy (Fail, Ignore) x fault x timeoutSeconds, every webhook of
``--webhooks`` rewritten to that policy and timeout. Faults are set at run time through the admin
API, as an operator would. Writes ``report.md`` (counts, the client-visible error, latency p50/p99),
``latency.png`` and ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import ipaddress
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from webhook import certs, config, server, tls
from webhook.emulator import attributes, caller, dispatcher
from webhook.emulator import config as hooks_config

FAULTS = ("none", "down", "slow-under", "slow-over", "http500", "reset", "malformed", "bad-tls")
POLICIES = ("Fail", "Ignore")

# A Pod that passes the built-in policies, so the "none" baseline is admitted and every rejection
# in the table comes from the fault.
DEFAULT_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "experiment", "namespace": "default", "labels": {"app": "experiment"}},
    "spec": {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "app",
                "image": "registry.example/app:1.0",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            }
        ],
    },
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="measure failurePolicy x fault x timeoutSeconds against a live local server",
        description="Run the server with injected faults and send admissions through the API-server "
                    "emulator; "
        "write a Markdown report and a latency chart.",
    )
    add = parser.add_argument
    add(
        "--webhooks",
        type=Path,
        required=True,
        metavar="FILE",
        help="Mutating/ValidatingWebhookConfiguration YAML",
    )
    add("--requests", type=int, default=20, help="admissions per scenario, sent concurrently (default 20)")
    add("--timeouts", default="1,2", help="timeoutSeconds values to try, comma-separated (default 1,2)")
    add(
        "--out",
        type=Path,
        default=Path("experiment-report"),
        help="output directory (default experiment-report)",
    )
    add("--object", type=Path, help="object to admit (default: a Pod that passes the built-in policies)")
    add("--policies", type=Path, action="append", help="policy files for the server (default policies/)")
    parser.set_defaults(func=run)


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    failure_policy: str
    fault: str
    timeout: int

    @property
    def label(self) -> str:
        return f"{self.timeout}s {self.failure_policy:<6} {self.fault}"


@dataclasses.dataclass(slots=True)
class Outcome:
    scenario: Scenario
    admitted: int = 0
    rejected: int = 0
    failed_open: int = 0
    """Admitted requests on which at least one webhook failed open: its policy was not applied."""
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def fault_file(fault: str, timeout: int) -> dict[str, Any]:
    """The admin API body for ``fault``: every path of the server gets it."""
    specs: dict[str, dict[str, Any]] = {
        "slow-under": {"delay": {"fixed": timeout / 2}},
        "slow-over": {"delay": {"fixed": timeout + 0.5}},
        "http500": {"failure": "http500"},
        "reset": {"failure": "reset"},
        "malformed": {"failure": "malformed"},
    }
    spec = specs.get(fault, {})
    return {
        "apiVersion": "admission.dev/v1alpha1",
        "kind": "FaultInjection",
        "paths": {"*": spec} if spec else {},
    }


def variant(
    loaded: hooks_config.Loaded, scenario: Scenario, *, bad_bundle: str, bundle: str
) -> hooks_config.Loaded:
    """Every webhook with the scenario's failurePolicy and timeoutSeconds, trusting our CA (or not)."""

    def one(hook: hooks_config.Hook) -> hooks_config.Hook:
        client = hook.webhook.client_config.model_copy(
            update={"ca_bundle": bad_bundle if scenario.fault == "bad-tls" else bundle}
        )
        webhook = hook.webhook.model_copy(
            update={
                "failure_policy": scenario.failure_policy,
                "timeout_seconds": scenario.timeout,
                "client_config": client,
            }
        )
        return dataclasses.replace(hook, webhook=webhook)

    return hooks_config.Loaded(
        mutating=tuple(map(one, loaded.mutating)), validating=tuple(map(one, loaded.validating))
    )


def services(loaded: hooks_config.Loaded, address: str) -> dict[str, str]:
    """Every service the webhooks reference, mapped to ``address``."""
    found = (h.webhook.client_config.service for h in loaded.mutating + loaded.validating)
    return {f"{s.namespace}/{s.name}": address for s in found if s is not None}


def host_names(
    loaded: hooks_config.Loaded,
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    names: set[str] = {"localhost"}
    ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {ipaddress.ip_address("127.0.0.1")}
    for hook in loaded.mutating + loaded.validating:
        target = caller.target(
            hook.webhook.client_config, webhook=hook.name, service_addresses=services(loaded, "127.0.0.1:1")
        )
        try:
            ips.add(ipaddress.ip_address(target.host))
        except ValueError:
            names.add(target.host)
    return sorted(names), sorted(ips, key=str)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


class Lab:
    """The live server, its certificates, and the emulator's view of where it is."""

    def __init__(self, loaded: hooks_config.Loaded, *, policies: tuple[Path, ...], workdir: Path) -> None:
        self.loaded = loaded
        ca, ca_key = certs.issue_ca(name=_name("failurePolicy experiment CA"))
        stranger, _ = certs.issue_ca(name=_name("a CA the webhooks do not trust"))
        dns, ips = host_names(loaded)
        leaf, leaf_key = certs.issue_leaf(ca, ca_key=ca_key, dns_names=dns, ips=ips)
        self.cert, self.key = workdir / "tls.crt", workdir / "tls.key"
        self.cert.write_bytes(certs.cert_pem(leaf, ca))
        self.key.write_bytes(certs.key_pem(leaf_key))
        import base64

        self.bundle = base64.b64encode(certs.cert_pem(ca)).decode()
        self.bad_bundle = base64.b64encode(certs.cert_pem(stranger)).decode()
        self.port, self.admin_port, self.closed_port = free_port(), free_port(), free_port()
        given: dict[str, Any] = {
            "port": self.port,
            "cert": self.cert,
            "key": self.key,
            "policies": policies,
            "admin_port": self.admin_port,
            "log_level": "critical",
            "drain_seconds": 0,
        }
        self.settings = config.ServeSettings(**given)
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        from webhook import logs

        # The server's own log lines (client disconnects during "slow-over") are not the point here.
        logs.configure(log_format="json", level="critical")
        # --admin-port in the settings gives the app fault injection and its admin API.
        app = server.build_app(self.settings)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        context = tls.server_context(cert=self.cert, key=self.key)
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=context).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def set_fault(self, session: aiohttp.ClientSession, fault: str, timeout: int) -> None:
        url = f"http://127.0.0.1:{self.admin_port}/faults"
        async with session.put(url, json=fault_file(fault, timeout)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"the fault admin API refused {fault}: {await resp.text()}")

    def resolve(self, scenario: Scenario) -> dispatcher.Resolve:
        port = self.closed_port if scenario.fault == "down" else self.port
        mapped = services(self.loaded, f"127.0.0.1:{port}")

        def resolve(hook: hooks_config.Hook) -> caller.Target:
            client = hook.webhook.client_config
            to = caller.target(client, webhook=hook.name, service_addresses=mapped)
            if client.url is not None:
                to = dataclasses.replace(to, dial=("127.0.0.1", port))
            return to

        return resolve


async def run_scenario(
    lab: Lab, scenario: Scenario, attrs: attributes.Attributes, requests: int, progress: Any
) -> Outcome:
    loaded = variant(lab.loaded, scenario, bad_bundle=lab.bad_bundle, bundle=lab.bundle)
    outcome = Outcome(scenario)
    resolve = lab.resolve(scenario)

    async def one() -> None:
        started = time.perf_counter()
        result = await dispatcher.admit(loaded, attrs, resolve=resolve)
        outcome.latencies_ms.append((time.perf_counter() - started) * 1000)
        if result.admitted:
            outcome.admitted += 1
            outcome.failed_open += any(w.outcome == "failed-open" for w in result.webhooks)
        else:
            outcome.rejected += 1
            outcome.errors[result.status.message if result.status else "?"] += 1
        progress.update(1)

    await asyncio.gather(*(one() for _ in range(requests)))
    return outcome


def _shorten(text: str, limit: int = 400) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report(outcomes: list[Outcome], *, webhooks: Path, requests: int) -> str:
    lines = [
        "# failurePolicy experiment",
        "",
        f"Webhooks: `{webhooks}`; {requests} admissions per scenario, sent at once, through the API-server "
        "emulator (`python -m webhook simulate`) to the real server with faults injected via its admin API.",
        "",
        "| timeoutSeconds | failurePolicy | fault | admitted | of which failed open | rejected | "
        "p50 ms | p99 ms "
        "| what the client sees (most frequent) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        seen = f"`{_shorten(o.errors.most_common(1)[0][0])}`" if o.errors else "(admitted)"
        lines.append(
            f"| {o.scenario.timeout} | {o.scenario.failure_policy} | {o.scenario.fault} | {o.admitted} | "
            f"{o.failed_open} | {o.rejected} | {percentile(o.latencies_ms, 50):.0f} | "
            f"{percentile(o.latencies_ms, 99):.0f} | {seen} |"
        )
    lines += [
        "",
        "Reading it: under `Fail` every call failure (down, TLS, timeout, 500, reset, malformed "
        "answer) rejects "
        "the request with `Internal error occurred: failed calling webhook ...`; under `Ignore` the same "
        "failures admit the object without that webhook's say (counted as failed open; the API "
        "server records "
        "a `failed-open` audit annotation), so its mutations are missing and its policies unenforced. "
        "A slow webhook costs its full delay, or `timeoutSeconds` when slower, on every request, "
        "per mutating "
        "webhook in turn, whatever the policy.",
        "",
        "![latency by scenario](latency.png)",
        "",
    ]
    return "\n".join(lines)


def chart(outcomes: list[Outcome], path: Path) -> None:
    """p50 latency per scenario as a bar, p99 as a whisker; green admitted, amber admitted with a
    webhook failing open, red rejected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, max(4.0, 0.3 * len(outcomes) + 1.5)))
    rows = range(len(outcomes))
    p50 = [max(percentile(o.latencies_ms, 50), 0.1) for o in outcomes]
    p99 = [max(percentile(o.latencies_ms, 99), 0.1) for o in outcomes]
    colors = [
        "#d9534f" if o.rejected > o.admitted else "#f0ad4e" if o.failed_open else "#5cb85c" for o in outcomes
    ]
    ax.barh(
        rows,
        p50,
        color=colors,
        xerr=[[0.0] * len(p50), [b - a for a, b in zip(p50, p99, strict=True)]],
        error_kw={"ecolor": "#333333", "capsize": 2, "elinewidth": 0.8},
    )
    ax.set_yticks(list(rows), [o.scenario.label for o in outcomes], family="monospace", fontsize=8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("admission latency, p50 bar and p99 whisker (ms, log scale)")
    ax.set_title("green: admitted   amber: admitted, a webhook failed open   red: rejected", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def experiment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    loaded = hooks_config.load(args.webhooks)
    timeouts = [int(t) for t in str(args.timeouts).split(",") if t.strip()]
    if not timeouts or any(not 1 <= t <= 30 for t in timeouts):
        raise hooks_config.InvalidInput("--timeouts: give whole seconds between 1 and 30, e.g. 1,2")
    obj = attributes.read_document(args.object) if args.object else DEFAULT_POD
    attrs = attributes.from_object(obj, source=str(args.object or "the default Pod"))
    policies = tuple(args.policies or [Path("policies")])
    scenarios = [Scenario(p, f, t) for t in timeouts for p in POLICIES for f in FAULTS]
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(loaded, policies=policies, workdir=Path(tmp))
        await lab.start()
        outcomes = []
        try:
            async with aiohttp.ClientSession() as admin:
                with tqdm(
                    total=len(scenarios) * args.requests, unit="req", file=sys.stderr, desc="scenarios"
                ) as progress:
                    for scenario in scenarios:
                        progress.set_postfix_str(scenario.label)
                        await lab.set_fault(admin, scenario.fault, scenario.timeout)
                        outcomes.append(await run_scenario(lab, scenario, attrs, args.requests, progress))
        finally:
            await lab.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report(outcomes, webhooks=args.webhooks, requests=args.requests))
    chart(outcomes, args.out / "latency.png")
    raw = [
        {
            "timeoutSeconds": o.scenario.timeout,
            "failurePolicy": o.scenario.failure_policy,
            "fault": o.scenario.fault,
            "admitted": o.admitted,
            "failed_open": o.failed_open,
            "rejected": o.rejected,
            "latency_ms": [round(v, 1) for v in o.latencies_ms],
            "errors": dict(o.errors),
        }
        for o in outcomes
    ]
    (args.out / "results.json").write_text(json.dumps(raw, indent=2))
    print(f"wrote {args.out / 'report.md'}, {args.out / 'latency.png'} and {args.out / 'results.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.requests < 1:
        print("error: --requests must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(experiment(args))
    except hooks_config.InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
