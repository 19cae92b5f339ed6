"""``audit``: evaluate what already exists in a cluster (or a dump of one) as if created now."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from webhook import catalog, config, engine, errors, offline
from webhook.audit import dump, evaluate, live, model, output, progress, reports, scan, selectors, targets

OUTPUTS = ("summary", "wide", "json", "policyreport")


class _Stream:
    """Standard output that may close under us (``audit ... | head``): once the reader is gone the
    rest is dropped, and the run still ends with the exit code of what it found."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def write(self, text: str) -> int:
        if not self.closed:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self.closed = True
                # Python's final flush would raise again and print a traceback: point it at /dev/null.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
        return len(text)


def _fail_on(text: str) -> frozenset[str]:
    modes = {m.strip() for m in text.split(",") if m.strip()}
    unknown = modes - {*model.FAIL_ON_MODES, "none"}
    if unknown or not modes:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of enforce, warn, audit (or none), got {text!r}")
    return frozenset(modes - {"none"})


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check what already exists in a cluster (or a kubectl dump) against the policies",
        description=(
            "Lists every kind the loaded validating policies apply to (all namespaces, or --namespace / "
            "--selector), one page at a time, and evaluates each object as if it were created now by --user. "
            "A Pod (or ReplicaSet, Job) that breaks exactly what its owner's template breaks is reported once, "
            "on the owner. Prints a summary (default), one line per violation (-o wide), JSON, or PolicyReports "
            "(-o policyreport; --apply writes them with server-side apply). Exit code: 0 nothing found, "
            "1 violations in the --fail-on modes, 2 could not run or ran partially (each problem is one line "
            "on standard error)."
        ),
    )
    source = parser.add_argument_group("what to read")
    source.add_argument("--from", dest="dumps", action="append", metavar="FILE|DIR|-",
                        help="read `kubectl get ... -o yaml|json` dumps instead of a cluster (repeatable; - is "
                        "standard input); Namespaces in the dump give namespace labels")
    source.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster credentials, else KUBECONFIG, "
                        "else ~/.kube/config)")
    source.add_argument("--context", help="kubeconfig context (default: its current context)")
    source.add_argument("--namespace", "-n", help="only this namespace (cluster-scoped objects are left out)")
    source.add_argument("--selector", "-l", help="only objects with these labels (kubectl syntax: app=web,tier!=db)")
    source.add_argument("--page-size", type=int, default=live.DEFAULT_PAGE_SIZE,
                        help=f"objects per list call (default {live.DEFAULT_PAGE_SIZE}); memory is bounded by it")
    source.add_argument("--request-timeout", type=float, default=live.DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per API call (default {live.DEFAULT_TIMEOUT:g})")
    policy = parser.add_argument_group("policies")
    policy.add_argument("--policies", type=Path, action="append",
                        help="policy file or directory (repeatable; default: the policies installed with the package)")
    policy.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="override a policy setting, e.g. podSecurity.level=restricted")
    policy.add_argument("--what-if", action="store_true",
                        help="compare: the current policies (--current-policies, default the installed ones) against "
                        "the proposed ones (--policies and --set); report new and fixed violations")
    policy.add_argument("--current-policies", type=Path, action="append", metavar="PATH",
                        help="with --what-if: the policies in force now (default: the installed ones)")
    who = parser.add_argument_group("the requester each object is created by")
    who.add_argument("--user", default=offline.Shape().username, help="userInfo.username (default developer)")
    who.add_argument("--group", action="append", dest="groups", metavar="GROUP",
                     help="userInfo.groups (repeatable; default system:authenticated)")
    out = parser.add_argument_group("output")
    out.add_argument("--output", "-o", choices=OUTPUTS, default=None,
                     help="summary (default): a table per policy and rule; wide: one line per violation; json; "
                     "policyreport: one report per namespace plus a cluster report, as YAML (or --apply)")
    out.add_argument("--report-api", choices=sorted(reports.APIS), default=reports.WGPOLICY.name,
                     help="wgpolicyk8s (wgpolicyk8s.io/v1alpha2 PolicyReport, the default) or openreports "
                     "(openreports.io/v1alpha1 Report)")
    out.add_argument("--apply", action="store_true",
                     help="write the reports into the cluster (server-side apply; stale ones are deleted) "
                     "instead of printing them; implies -o policyreport")
    out.add_argument("--all-pods", action="store_true",
                     help="report every Pod, ReplicaSet and Job on its own, not folded into its owner")
    out.add_argument("--fail-on", type=_fail_on, default=frozenset({"enforce"}), metavar="MODES",
                     help="which violations make the exit code 1: enforce (default), warn, audit, comma-separated, "
                     "or none")
    out.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress line on standard error (shown only on a terminal anyway)")
    parser.set_defaults(func=run)


def _load(paths: list[Path] | None, overrides: list[str]) -> engine.PolicySet:
    try:
        return catalog.load(paths or [config.DEFAULT_POLICIES], overrides=overrides)
    except errors.PolicyConfigError as exc:
        raise model.AuditError(f"policy files: {exc}") from None


def _check(args: argparse.Namespace) -> str:
    """The output to write, after refusing combinations that cannot mean anything."""
    chosen: str = args.output or ("policyreport" if args.apply else "summary")
    if args.apply and chosen != "policyreport":
        raise model.AuditError(f"--apply writes reports; it cannot be combined with -o {chosen}")
    if args.apply and args.what_if:
        raise model.AuditError("--apply with --what-if would publish reports of policies not in force; drop one")
    if args.apply and args.selector:
        raise model.AuditError("--apply with --selector would replace each namespace's report with the selected "
                               "objects only; drop --selector, or print the reports without --apply")
    if args.current_policies and not args.what_if:
        raise model.AuditError("--current-policies is only meaningful with --what-if")
    if args.dumps and (args.kubeconfig or args.context) and not args.apply:
        raise model.AuditError("--from reads a dump: --kubeconfig and --context are only used with --apply")
    if args.page_size < 1:
        raise model.AuditError("--page-size must be at least 1")
    return chosen


def run(args: argparse.Namespace) -> int:
    chosen = _check(args)
    selector = selectors.parse(args.selector) if args.selector else None
    if args.what_if:
        current = _load(args.current_policies, [])
        proposed = _load(args.policies or args.current_policies, args.set)
        policy_sets = [current, proposed]
    else:
        policy_sets = [_load(args.policies, args.set)]
    shape = offline.Shape(username=args.user, groups=tuple(args.groups) if args.groups else offline.Shape().groups)
    evaluators = [evaluate.Evaluator(ps, shape=shape) for ps in policy_sets]
    shown = progress.Progress.for_terminal(sys.stderr, enabled=args.progress)
    api_client: Any = None
    if args.dumps:
        source: scan.Source = dump.Source(args.dumps, namespace=args.namespace, selector=selector)
    else:
        api_client = live.connect(kubeconfig=args.kubeconfig, context=args.context)
        wanted, wildcards = targets.of(policy_sets)
        source = live.Source(live.Cluster(api_client, timeout=args.request_timeout), wanted, wildcards,
                             namespace=args.namespace, selector=args.selector, page_size=args.page_size)
    stdout: Any = _Stream(sys.stdout)
    try:
        shown.start("reading")
        source.prepare(on_object=shown.tick)
        shown.close()
        summary = output.Summary()
        sinks: list[output.Sink] = [summary]
        what_if = output.WhatIf(stdout if chosen == "wide" else None) if args.what_if else None
        if what_if is not None:
            sinks.append(what_if)
        elif chosen == "wide":
            sinks.append(output.Wide(stdout))
        json_out = output.Json(stdout, what_if=args.what_if) if chosen == "json" else None
        if json_out is not None:
            sinks.append(json_out)
        collector = reports.Collector() if chosen == "policyreport" else None
        if collector is not None:
            sinks.append(collector)
        totals = scan.run(source, evaluators, sinks, fold=not args.all_pods, shown=shown)
    finally:
        source.close()
    problems = [*source.problems, *totals.problems]
    notes = list(getattr(source, "notes", []))
    lines = output.totals_lines(summary, listed=totals.listed, uncovered=totals.uncovered,
                                unknown_namespaces=len(totals.unknown_namespaces))
    if json_out is not None:
        found: dict[str, Any] = {**summary.to_dict(), "evaluated": totals.listed,
                                 "uncovered": dict(totals.uncovered)}
        if what_if is not None:
            found["whatIf"] = what_if.to_dict()
        json_out.close(found, problems)
    elif collector is not None:
        problems.extend(_reports(args, collector, source, api_client, stdout, summary, lines))
    elif what_if is not None:
        if chosen == "summary":
            stdout.write("\n".join(what_if.table()) + "\n\n")
        stdout.write(what_if.totals() + "\n")
    else:
        if chosen == "summary":
            stdout.write("\n".join(summary.table()) + "\n\n")
        stdout.write("\n".join(lines) + "\n")
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    for problem in problems:
        sys.stderr.write(f"error: {problem}\n")
    if problems:
        sys.stderr.write(f"audit: partial: {len(problems)} problem(s) above; what could be read was evaluated\n")
        return 2
    found_any = what_if.found(args.fail_on) if what_if is not None else summary.found(args.fail_on)
    return 1 if found_any else 0


def _reports(
    args: argparse.Namespace, collector: reports.Collector, source: scan.Source, api_client: Any,
    stdout: Any, summary: output.Summary, lines: list[str],
) -> list[str]:
    """Print the reports, or write them with --apply; the problems met."""
    api = reports.APIS[args.report_api]
    timestamp = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    if not args.apply:
        for report in reports.build(collector.namespaces, api, timestamp=timestamp):
            stdout.write(reports.to_yaml(report))
        sys.stderr.write("\n".join(lines) + "\n")
        return []
    if api_client is None:
        api_client = live.connect(kubeconfig=args.kubeconfig, context=args.context)
    writer = live.Writer(live.Cluster(api_client, timeout=args.request_timeout), api, namespace=args.namespace,
                         cluster_scope=args.namespace is None, page_size=args.page_size)
    failed: set[tuple[str, str]] = set(getattr(source, "failed", set()))
    problems = []
    try:
        carried = writer.read_existing(failed)
        for report in reports.build(collector.namespaces, api, timestamp=timestamp, carried=carried):
            refused = writer.write(report)
            if refused is not None:
                problems.append(refused)
        writer.delete_stale()
    except model.Problem as exc:
        problems.append(str(exc))
    for line in writer.lines:
        stdout.write(line + "\n")
    stdout.write("\n" + "\n".join(summary.table()) + "\n\n" + "\n".join(lines) + "\n")
    return problems
