"""Runs inside the virtme-ng guest: load modules, run the requested cases, write JSON.

Started by ``vm.py`` as ``python guest_runner.py --repo R --results F case...``.
Results are rewritten after every case, so a guest that dies half-way still
leaves the results of the cases that finished (and the host says which did not).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Started with ``python -S`` (see vm.site_paths): package directories come as --site=PATH.
SITE_PATHS = [arg.split("=", 1)[1] for arg in sys.argv[1:] if arg.startswith("--site=")]
sys.path[:0] = [str(REPO), str(REPO / "firmware"), *SITE_PATHS]

from tests.kernel.cases import Case, GuestContext, load_all_cases  # noqa: E402

CONFIGFS = Path("/sys/kernel/config")


def prepare_guest() -> dict[str, Any]:
    """What a Pi's systemd would have done: configfs mounted."""
    subprocess.run(["modprobe", "configfs"], check=False)
    if not os.path.ismount(CONFIGFS):
        subprocess.run(["mount", "-t", "configfs", "none", str(CONFIGFS)], check=True)
    return {"kernel": os.uname().release, "cpus": os.cpu_count()}


def load_modules(case: Case, loaded: set[str]) -> None:
    for module in case.modules:
        if module in loaded:
            continue
        result = subprocess.run(["modprobe", module], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"modprobe {module} failed: {result.stderr.strip()}")
        loaded.add(module)


class CaseTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise CaseTimeout("case exceeded its time limit")


LEFTOVER_GRACE_S = 30.0
"""How long a voxkey left running by a case gets to exit on SIGTERM (disconnecting from BlueZ) before SIGKILL."""


def _voxkey_processes() -> dict[int, str]:
    """Every ``python -m voxkey`` in the guest (``GuestContext.voxkey_command``), as pid: command line."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # exited meanwhile
        if any(argv[i : i + 2] == ["-m", "voxkey"] for i in range(len(argv) - 1)):
            found[int(cmdline.parent.name)] = " ".join(argv).strip()
    return found


def stop_leftover_voxkeys() -> list[str]:
    """Stop what a case left running, so its failure stays its own.

    A case that raised before it stopped its ``voxkey type`` left it waiting for a
    host: it registered again with the next case's bluetoothd, held the attribute
    handles voxkey pins, and every later voxkey got "Failed to create entry in
    database" (one bluetoothd crash in the bleak case failed four cases).
    """
    leftovers = _voxkey_processes()
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while time.monotonic() < deadline and set(leftovers) & set(_voxkey_processes()):
        time.sleep(0.2)
    for pid in set(leftovers) & set(_voxkey_processes()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(leftovers.values())


KERNEL_TROUBLE = ("Oops", "BUG:", "WARNING:", "general protection fault", "Kernel panic")


def _dmesg() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout.splitlines()


def kernel_trouble(since: int) -> list[str]:
    """The kernel's log from its first oops, BUG or WARNING after line ``since`` (40 lines), else nothing.

    Recorded with the case it happened in: the kernel carries it into every later case (an oops also
    turns tracing off, which the USB cases' input-core witness depends on).
    """
    lines = _dmesg()[since:]
    first = next((i for i, line in enumerate(lines) if any(mark in line for mark in KERNEL_TROUBLE)), None)
    return [] if first is None else lines[first : first + 40]


def run_case(case: Case, context: GuestContext, loaded: set[str]) -> dict[str, Any]:
    started = time.monotonic()
    dmesg_lines = len(_dmesg())
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(case.timeout_s))
    try:
        load_modules(case, loaded)
        observations = case.function(context)
        outcome: dict[str, Any] = {"status": "ran", "observations": observations}
    except BaseException as exc:
        outcome = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    finally:
        signal.alarm(0)
    outcome["seconds"] = round(time.monotonic() - started, 3)
    leftovers = stop_leftover_voxkeys()
    if leftovers:
        outcome["voxkey_left_running"] = leftovers
    trouble = kernel_trouble(dmesg_lines)
    if trouble:
        outcome["kernel_trouble"] = trouble
    return outcome


def write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--site", action="append", default=[], help="package directory (python -S)")
    parser.add_argument("cases", nargs="*", help="case names (default: all registered)")
    args = parser.parse_args()

    guest_started = time.monotonic()
    registry, import_errors = load_all_cases()
    unknown = [name for name in args.cases if name not in registry]
    wanted = set(args.cases or registry)
    report: dict[str, Any] = {"guest": {"uptime_at_start_s": _uptime(), "import_errors": import_errors}, "cases": {}}
    if unknown:
        report["guest"]["unknown_cases"] = unknown
    report["guest"].update(prepare_guest())
    write_json(args.results, report)

    context = GuestContext(repo=REPO, work_dir=args.results.parent, python=sys.executable, site_paths=tuple(args.site))
    loaded: set[str] = set()
    for name, case in registry.items():
        if name not in wanted:
            continue
        print(f"guest: case {name} ...", flush=True)
        report["cases"][name] = run_case(case, context, loaded)
        print(
            f"guest: case {name}: {report['cases'][name]['status']} in {report['cases'][name]['seconds']} s", flush=True
        )
        for leftover in report["cases"][name].get("voxkey_left_running", []):
            print(f"guest: case {name} left running (stopped): {leftover}", flush=True)
        if report["cases"][name].get("kernel_trouble"):
            print(f"guest: case {name}: kernel trouble: {report['cases'][name]['kernel_trouble'][0]}", flush=True)
        write_json(args.results, report)
    report["guest"]["cases_seconds"] = round(time.monotonic() - guest_started, 3)
    report["guest"]["dmesg_tail"] = _dmesg_tail()
    report["guest"]["finished"] = True
    write_json(args.results, report)
    return 0


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _dmesg_tail(lines: int = 80) -> list[str]:
    return _dmesg()[-lines:]


if __name__ == "__main__":
    sys.exit(main())
