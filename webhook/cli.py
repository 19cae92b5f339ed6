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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or with ``only`` just that command (when it is one): a command module
    imports what its command needs, and ``serve`` should not carry the offline tools' imports
    (the CEL runtime, the emulator, audit reports...) in every worker's memory."""
    parser = argparse.ArgumentParser(
        prog="admission-webhook",
        description="A Kubernetes admission webhook server: "
        "validate and mutate Pods, workloads, RBAC and storage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    for name in [only] if only in names else names:
        module = importlib.import_module(f"webhook.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # The command is the first argument when it names one (``serve --port ...``); otherwise
    # (``--help``, a typo, no command) the full parser answers.
    parser = build_parser(arguments[0] if arguments and not arguments[0].startswith("-") else None)
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except errors.WebhookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result
