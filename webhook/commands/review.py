"""``review``: run the policies over AdmissionReviews, recordings or manifests, without a server."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from webhook import catalog, config, errors, offline


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _minor(text: str) -> int:
    """``1.35`` (or ``v1.35``) -> 35."""
    major, sep, minor = text.strip().removeprefix("v").partition(".")
    if major != "1" or not sep or not minor.isdigit():
        raise argparse.ArgumentTypeError(f"expected a Kubernetes version such as 1.35, got {text!r}")
    return int(minor)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "review",
        help="review files offline: AdmissionReviews, recordings (serve --record) or manifests",
        description=(
            "Run the mutating chain, then the validating chain on the mutated object (as the API server "
            "calls webhooks), over each AdmissionReview, recording or manifest in PATH (files, directories, "
            "or - for stdin; YAML may hold several documents or a kind: List). Prints the verdict, "
            "warnings, denial message and the mutation as a diff. Exit code: 0 all allowed, 1 any denied, "
            "2 unusable input or policy files."
        ),
    )
    add = parser.add_argument
    add("paths", nargs="+", metavar="PATH", help="file, directory or - (stdin)")
    add("--policies", type=Path, action="append",
        help="policy file or directory (repeatable; default: the policies installed with the package, "
        "the repository's policies/)")
    add("--set", action="append", default=[], metavar="PATH=VALUE",
        help="override a policy setting, e.g. podSecurity.level=restricted")
    add("--only", choices=["mutate", "validate"], help="run one chain only, on the object as given")
    add("--color", choices=["auto", "always", "never"], default="auto",
        help="colour verdicts: auto (on a terminal, unless NO_COLOR is set), always, never")
    add("--output", "-o", choices=["text", "json", "manifests"], default="text",
        help="text (default) or json: one entry per review with its source (file, document, item), kind, "
        "namespace, name, operation, verdict, warnings, changes from a recording and the AdmissionReview answer; "
        "manifests: the objects as mutated, as YAML for kubectl apply -f - (denied ones only on stderr)")
    add("--summary", action="store_true", help="print one verdict line per review and the totals only")
    add("--explain", action="store_true",
        help="for every policy, say whether it ran and why not (scope, exemption, mode, kind, operation)")
    add("--recursive", "-R", action="store_true", help="search directories recursively")
    add("--fail-on-warnings", action="store_true", help="exit 1 when any review carries warnings")
    add("--fail-on-change", action="store_true",
        help="exit 1 when a recording's new answer differs from the recorded one")
    shape = parser.add_argument_group("how a plain manifest is wrapped into a request")
    shape.add_argument("--operation", choices=["CREATE", "UPDATE", "DELETE", "CONNECT"], default="CREATE",
                       help="default CREATE (UPDATE uses the manifest as oldObject too; DELETE sends it as "
                       "oldObject)")
    shape.add_argument("--namespace", "-n", default="default",
                       help="namespace for namespaced manifests that name none (default: default)")
    shape.add_argument("--user", default=offline.Shape().username,
                       help="userInfo.username (default developer)")
    shape.add_argument("--group", action="append", dest="groups", metavar="GROUP",
                       help="userInfo.groups (repeatable; default system:authenticated)")
    shape.add_argument("--dry-run", action="store_true", help="set dryRun: true")
    shape.add_argument("--kubernetes-version", type=_minor, default=offline.Shape().kubernetes_version,
                       metavar="1.N",
                       help="the API server's version, for the defaults and field resets it applies to a "
                       "manifest before admission and the CEL libraries admission policies may use "
                       f"(default 1.{offline.Shape().kubernetes_version})")
    shape.add_argument("--old-object", type=Path, metavar="FILE",
                       help="the object as stored, sent as oldObject with --operation UPDATE or DELETE")
    add("--namespace-label", action="append", type=_label, default=[], metavar="KEY=VALUE",
        help="a label of the request's namespace, for namespaceSelector-style opt-ins (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    labels = dict(args.namespace_label) or None
    shape = offline.Shape(
        operation=args.operation, namespace=args.namespace, username=args.user,
        groups=tuple(args.groups) if args.groups else offline.Shape().groups, dry_run=args.dry_run,
        namespace_labels=labels, kubernetes_version=args.kubernetes_version,
    )
    try:
        policy_set = catalog.load(args.policies or [config.DEFAULT_POLICIES], overrides=args.set,
                                  kubernetes_minor=args.kubernetes_version)
    except errors.PolicyConfigError as exc:
        raise errors.PolicyConfigError(f"policy files: {exc}") from None
    if sys.stderr.isatty():
        # Once, for a person at a terminal (scripts and CI read stdout and exit codes): which groups
        # this run applies, so an unexpected "allowed" is not a group that is off.
        sys.stderr.write(groups_line(policy_set) + "\n")
    old_object = _old_object(args.old_object, args.operation) if args.old_object is not None else None
    options = offline.Options(only=args.only, output=args.output, summary=args.summary,
                              fail_on_warnings=args.fail_on_warnings, fail_on_change=args.fail_on_change,
                              recursive=args.recursive, old_object=old_object, explain=args.explain,
                              color=_color(args.color))
    code = offline.run(args.paths, policy_set=policy_set, shape=shape, options=options)
    _quiet_if_reader_left()
    return code


def groups_line(policy_set: Any) -> str:
    """``policies: pod-security (enforce), rbac (warn); off: storage; 2 admission policies``."""
    groups = policy_set.config.groups
    on = [f"{name} ({s.mode})" for name, s in groups.items() if s.mode != "off"]
    off = [name for name, s in groups.items() if s.mode == "off"]
    admission = len(policy_set.cel.policies) + len(policy_set.cel_mutating.policies)
    text = f"policies: {', '.join(on) or 'no group on'}"
    if off:
        text += f"; off: {', '.join(off)}"
    if admission:
        text += f"; {admission} admission polic{'y' if admission == 1 else 'ies'}"
    return text


def _old_object(path: Path, operation: str) -> dict[str, Any]:
    if operation not in ("UPDATE", "DELETE"):
        raise errors.WebhookError(f"--old-object {path}: only meaningful with --operation UPDATE or DELETE")
    inputs, problems = offline.read([str(path)])
    if problems:
        raise errors.WebhookError(f"--old-object: {problems[0]}")
    objects = [i.document["request"].get("object") or i.document["request"].get("oldObject") for i in inputs]
    if len(objects) != 1 or not isinstance(objects[0], dict):
        raise errors.WebhookError(f"--old-object {path}: expected exactly one manifest, found {len(objects)}")
    found: dict[str, Any] = objects[0]
    return found


def _color(choice: str) -> bool:
    """``--color auto``: on a terminal, unless ``NO_COLOR`` is set (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _quiet_if_reader_left() -> None:
    """``review ... | head``: once the reader has gone, Python's final flush of stdout would raise
    BrokenPipeError and print a traceback; point stdout at /dev/null so the exit code stays ours."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
