"""``test``: run policy test suites (``kind: PolicyTest``) and report for CI (text, JSON, JUnit XML)."""

from __future__ import annotations

import argparse
from pathlib import Path

from webhook import suites


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "test",
        help="run policy test suites (*-test.yaml, kind: PolicyTest) and check the expected answers",
        description=(
            "Find the policy test suites in PATH (files named *-test.yaml or holding kind: PolicyTest; "
            "directories are searched recursively), review every resource they name through the same chains "
            "as review, and check the expected verdict, policies, message, warnings and mutation. Prints one "
            "line per check and a summary. Exit code: 0 all pass, 1 any fails, 2 a suite cannot be used. "
            "Format: docs/testing-policies.md."
        ),
    )
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH",
                        help="suite file or directory (default: the current directory)")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="also write a JUnit XML report (one testsuite per suite file, one testcase per check)")
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text",
                        help="text (default) or json: every suite with its checks, the actual answers, the "
                        "differences and a summary")
    parser.add_argument("--update", action="store_true",
                        help="fill in missing expectations and refresh those that no longer hold, in the suite "
                        "files' results sections (the diff is printed; read it before committing)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return suites.main(args.paths, output=args.output, junit_path=args.junit, update=args.update)
