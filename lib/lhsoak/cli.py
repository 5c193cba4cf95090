"""The `lhsoak` command line: one sub-command per module in `lhsoak.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from lhsoak import __version__, commands, errors


def _command_modules() -> list[ModuleType]:
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    return [importlib.import_module(f"{commands.__name__}.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lhsoak", description="Longhorn recurring-job soak harness.")
    parser.add_argument("--version", action="version", version=f"lhsoak {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse exits 2 on bad arguments, matching our contract; keep its code.
        return int(exit_.code or 0)
    try:
        return int(args.run(args))
    except errors.UsageError as error:
        print(f"lhsoak {args.command}: {error}", file=sys.stderr)
        return errors.EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lhsoak {args.command}: interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
