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

COMMAND_MODULES = ("keyboard", "speech", "service", "bluetooth", "remote")
MODULE_OF_COMMAND = {
    "keys": "keyboard",
    "type": "keyboard",
    "transcribe": "speech",
    "models": "speech",
    "bench": "speech",
    "run": "service",
    "config": "service",
    "doctor": "service",
    "pair": "bluetooth",
    "hosts": "bluetooth",
    "remote": "remote",
}
"""Which module registers each command: a command imports only its own module, so
``voxkey type`` does not pay for numpy, whisper and D-Bus (seconds on a Pi Zero);
of the config it reads only the sections it uses (see ``voxkey.cli.common``)."""


def modules_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules to load for this command line: one for a known command, else all (for help)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    module = MODULE_OF_COMMAND.get(command or "")
    return (module,) if module else COMMAND_MODULES


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxkey", description="A keyboard you talk to.")
    parser.add_argument("--version", action="version", version=f"voxkey {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what voxkey is doing, starting with the config file it read"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(f"voxkey.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"voxkey.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(modules_for(arguments))
    args = parser.parse_args(arguments)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    # --debug adds milliseconds since start: the order of D-Bus signals, HCI events and writes is the story
    timing = "%(relativeCreated)d ms " if args.debug else ""
    logging.basicConfig(level=level, format=f"voxkey: {timing}%(levelname)s: %(name)s: %(message)s")
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
