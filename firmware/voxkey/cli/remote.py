"""``voxkey remote``: the optional LAN speech server (asr.remote): is it reachable, and what systemd must allow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from voxkey.cli.common import add_config_option, load_sections
from voxkey.errors import ConfigError

if TYPE_CHECKING:
    from voxkey.asr import AsrSettings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    remote = subparsers.add_parser("remote", help="the optional speech server on the LAN (asr.remote)")
    actions = remote.add_subparsers(dest="remote_command", metavar="SUBCOMMAND", required=True)
    check = actions.add_parser("check", help="where the audio goes, and whether the server answers")
    add_config_option(check)
    check.set_defaults(func=run_check)
    systemd = actions.add_parser(
        "systemd", help="print (or --write) the unit drop-in that lets the service reach the server, nothing else"
    )
    add_config_option(systemd)
    systemd.add_argument("--write", type=Path, nargs="?", const=None, default=False, metavar="PATH")
    systemd.set_defaults(func=run_systemd)


def _remote(args: argparse.Namespace) -> AsrSettings:
    asr: AsrSettings = load_sections(args, "asr")["asr"]
    if not asr.remote.enabled:
        raise ConfigError("asr.remote is off (asr.remote.enabled: false): all speech stays on this device")
    return asr


def run_check(args: argparse.Namespace) -> int:
    from voxkey.remote.clients import client_for
    from voxkey.remote.network import privacy_findings, reachability

    remote = _remote(args).remote
    failed = 0
    for name, finding in (
        ("privacy", privacy_findings(remote)),
        ("server", reachability(client_for(remote).probe, remote.timeout_s)),
    ):
        print(f"{'ok  ' if finding.ok else 'FAIL'} {name}: {finding.detail}")
        if not finding.ok:
            failed += 1
            print(f"     fix: {finding.fix}")
    return 1 if failed else 0


def run_systemd(args: argparse.Namespace) -> int:
    from voxkey.remote.network import DROPIN_PATH, systemd_dropin

    text = systemd_dropin(_remote(args).remote)
    if args.write is False:
        sys.stdout.write(text)
        return 0
    path = Path(args.write or DROPIN_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}; now: systemctl daemon-reload && systemctl restart voxkey")
    return 0
