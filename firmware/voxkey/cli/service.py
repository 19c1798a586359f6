"""``voxkey run``, ``voxkey config`` and ``voxkey doctor``: the daemon and its checks."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from voxkey import config as config_module
from voxkey.cli.common import add_config_option, load_config
from voxkey.errors import ConfigError

OUTPUTS = ("terminal", "uinput", "usb", "bluetooth", "both")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = subparsers.add_parser(
        "run",
        help="the dictation daemon (a Pi's button, mic and USB/Bluetooth; or simulated on a PC)",
        description="Run the voice keyboard. With --audio-file, one press-speak-release cycle runs over the "
        "whole file and voxkey exits once the text is typed.",
    )
    add_config_option(run)
    run.add_argument("--audio-file", type=Path, metavar="WAV", help="use this recording instead of the microphone")
    run.add_argument(
        "--output",
        choices=OUTPUTS,
        help="override output.transport: terminal prints the text, uinput types it into this PC's desktop",
    )
    run.set_defaults(func=run_daemon)

    config = subparsers.add_parser("config", help="check a config file or print the defaults")
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    check = config_commands.add_parser("check", help="validate a config file (default: the one voxkey run uses)")
    check.add_argument("path", nargs="?", type=Path, metavar="PATH")
    check.set_defaults(func=check_config)
    defaults = config_commands.add_parser("defaults", help="print every setting with its default value")
    defaults.set_defaults(func=print_defaults)

    doctor = subparsers.add_parser("doctor", help="check config, model, audio, USB gadget, Bluetooth and GPIO")
    add_config_option(doctor)
    doctor.set_defaults(func=run_doctor)


def run_daemon(args: argparse.Namespace) -> int:
    from voxkey.daemon import RunOptions
    from voxkey.wiring import run

    config = load_config(args)
    if not (args.debug or args.verbose):
        logging.getLogger().setLevel(config.service.log_level.upper())
    options = RunOptions(audio_file=args.audio_file, output=args.output)
    if args.audio_file is not None and not args.audio_file.is_file():
        from voxkey.errors import AudioError

        raise AudioError(f"{args.audio_file}: no such file")
    return run(config, options)


def check_config(args: argparse.Namespace) -> int:
    path = args.path if args.path is not None else config_module.default_path()
    if args.path is None and not path.exists():
        print(f"{path} does not exist: voxkey runs with the defaults (voxkey config defaults shows them)")
        return 0
    config = config_module.load(path)
    print(
        f"{path}: ok ({config.button.mode} mode on {config.button.source}, transport {config.output.transport}, "
        f"layout {config.output.layout}, model {config.asr.model})"
    )
    return 0


def print_defaults(args: argparse.Namespace) -> int:
    sys.stdout.write(config_module.dump_defaults())
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from voxkey.doctor import format_results, run_checks

    try:
        config = load_config(args)
        config_error = None
    except ConfigError as exc:
        config, config_error = config_module.Config(), exc
    results = run_checks(config, config_error)
    print(format_results(results))
    return 0 if all(r.ok for r in results) else 1
