"""``admission-webhook`` / ``python -m webhook``: subcommands are the modules of ``webhook.commands``.

Each command module defines ``add_parser(subparsers)``, which adds its parser and sets ``func``
(``args -> exit code``). Discovering them keeps this file from being a merge point.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from webhook import __version__, commands, errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="admission-webhook",
        description="A Kubernetes admission webhook server: "
        "validate and mutate Pods, workloads, RBAC and storage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"webhook.commands.{info.name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except errors.WebhookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result
