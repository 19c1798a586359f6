"""The ``voxkey`` command: subcommands live in one module per command group.

Failures a user can fix arrive as ``VoxkeyError`` and are printed as one line;
a traceback is only shown with ``--debug`` because it helps developers, not
users.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from voxkey import __version__
from voxkey.errors import VoxkeyError

COMMAND_MODULES = ("keyboard", "speech", "service", "bluetooth")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxkey", description="A keyboard you talk to.")
    parser.add_argument("--version", action="version", version=f"voxkey {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what voxkey is doing")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"voxkey.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"voxkey.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="voxkey: %(levelname)s: %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except VoxkeyError as exc:
        if args.debug:
            raise
        print(f"voxkey: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
