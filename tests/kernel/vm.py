"""Boot a virtme-ng guest on Debian's kernel once and run a batch of guest cases in it.

The guest is this machine's own filesystem (shared read-only, with throw-away
overlays on /etc, /usr, /var, /tmp, ...), so the harness, the repository and
the Python interpreter running pytest are all there under the same paths. The
only host directory the guest can write is the results directory, handed over
with ``--rwdir``. No KVM here, so QEMU emulates the CPU (TCG): a boot costs
tens of seconds, which is why one boot serves every case.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GUEST_RUNNER = Path(__file__).resolve().parent / "guest_runner.py"
DEFAULT_MEMORY = os.environ.get("VOXKEY_GUEST_MEMORY", "1536M")
DEFAULT_CPUS = int(os.environ.get("VOXKEY_GUEST_CPUS", "1"))
"""One vCPU: measured on the 2-core dev machine under load, the guest boots in ~65 s instead of
155-175 s with two, and the evdev recorder never fell behind. With two vCPUs the host
descheduled them independently, so one vCPU delivered key events while the recorder's vCPU
stood still, and evdev dropped events (SYN_DROPPED) even with the recorder at SCHED_FIFO."""

INSTRUCTION_CLOCK = "instructions"
"""A guest whose clock counts emulated instructions (QEMU ``-icount shift=0,sleep=on``): 1 ns each.

Without KVM the emulated CPU is 100-200 times slower than this machine, but the guest's clock
is the wall clock, so work that a device does in a second takes the guest minutes of its own
time; whisper tiny.en took 52.8 s for a spoken pairing code here (0.28 s natively), longer than
the kernel's 30 s pairing timer. With the instruction clock the same transcription takes 3.4 s of
guest time (the speed of a CPU doing one instruction per nanosecond, slower than a Raspberry Pi 4
with NEON), so every timer in the guest (the kernel's, BlueZ's, voxkey's) judges the work as such
a device would. ``sleep=on``: while the guest idles, its clock follows the wall clock, so waiting
(a WAV played at microphone pace) takes real time. Only cases that need it ask for it (a second
boot): the other cases' timings were measured with the wall clock."""
BOOT_CLOCKS = ("wall", INSTRUCTION_CLOCK)


class GuestUnavailable(RuntimeError):
    """The machine lacks what the guest needs (vng, qemu, a Debian kernel)."""


@dataclass
class GuestRun:
    """Everything one guest boot produced."""

    command: list[str]
    returncode: int
    wall_seconds: float
    results: dict[str, Any]
    log: str
    directory: Path
    cases_requested: list[str] = field(default_factory=list)
    clock: str = "wall"

    @property
    def boot_seconds(self) -> float | None:
        """Guest uptime when the runner started: kernel boot plus virtme-ng init (udev)."""
        guest = self.results.get("guest", {})
        value = guest.get("uptime_at_start_s")
        return float(value) if value is not None else None

    def case(self, name: str) -> dict[str, Any]:
        return dict(self.results.get("cases", {}).get(name, {}))

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-lines:])


def site_paths() -> list[str]:
    """This interpreter's package directories, for a guest Python started with ``-S``.

    Under TCG every file system call crosses 9p slowly; ``site`` executing the
    ``.pth`` files of a full site-packages costs ~30 s per interpreter start in
    the guest, ``-S`` plus these paths about 5 s.
    """
    return [path for path in sys.path if path.endswith(("site-packages", "dist-packages")) and Path(path).is_dir()]


def find_kernel() -> Path:
    """``VOXKEY_KERNEL``, else the newest Debian ``/boot/vmlinuz-*`` (package linux-image-amd64)."""
    override = os.environ.get("VOXKEY_KERNEL")
    if override:
        return Path(override)
    candidates = sorted(Path("/boot").glob("vmlinuz-*"), key=_version_key)
    if not candidates:
        raise GuestUnavailable("no kernel in /boot: apt-get install linux-image-amd64 (or set VOXKEY_KERNEL)")
    return candidates[-1]


def _version_key(path: Path) -> list[Any]:
    parts = path.name.removeprefix("vmlinuz-").replace("-", ".").split(".")
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts]


def find_vng() -> str:
    beside_python = Path(sys.executable).parent / "vng"
    found = shutil.which("vng") or (str(beside_python) if beside_python.exists() else None)
    if not found:
        raise GuestUnavailable("vng not found: pip install virtme-ng")
    if not shutil.which("qemu-system-x86_64"):
        raise GuestUnavailable("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
    return found


def check_kernel_readable(kernel: Path) -> None:
    if not os.access(kernel, os.R_OK):
        raise GuestUnavailable(f"{kernel} is not readable (Debian makes it root-only; run as root)")
    release = kernel.name.removeprefix("vmlinuz-")
    if not (Path("/lib/modules") / release).is_dir():
        raise GuestUnavailable(f"/lib/modules/{release} missing: the guest loads its modules from there")


def vng_command(
    kernel: Path,
    shared_dir: Path,
    guest_command: str,
    cpus: int = DEFAULT_CPUS,
    memory: str = DEFAULT_MEMORY,
    clock: str = "wall",
) -> list[str]:
    if clock not in BOOT_CLOCKS:
        raise ValueError(f"guest clock {clock!r}: one of {BOOT_CLOCKS}")
    icount = ["--qemu-opts", "-icount shift=0,sleep=on"] if clock == INSTRUCTION_CLOCK else []
    return [
        find_vng(),
        "--run",
        str(kernel),
        "--disable-kvm",
        "--cpus",
        str(cpus),
        "--memory",
        memory,
        "--rwdir",
        str(shared_dir),
        "--cwd",
        str(shared_dir),
        *icount,
        "--exec",
        guest_command,
    ]


class GuestBoot:
    """A guest booting (or already running its cases) in the background; ``wait()`` gives its ``GuestRun``.

    The session starts its boots right after collection (``tests/kernel/conftest.py``) so the host-side
    tests run while QEMU emulates the guest on the other core; the kernel tests then only read the results.
    """

    def __init__(self, command: list[str], env: dict[str, str], directory: Path, cases: list[str], clock: str) -> None:
        self.command, self.directory, self.cases, self.clock = command, directory, cases, clock
        self.results_file = directory / "results.json"
        self.results_file.unlink(missing_ok=True)
        self.log_path = directory / "vng.log"
        self.started = time.monotonic()
        self._killed = False
        with self.log_path.open("w") as log_file:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # kill() ends QEMU with vng, not just vng
            )

    def wait(self, timeout_s: float = 1800.0) -> GuestRun:
        """The boot's results, once it ended; a boot that outlives ``timeout_s`` (from its start) is killed."""
        left = max(0.0, self.started + timeout_s - time.monotonic())
        # Not ``Popen.wait(timeout=...)``: that polls with ``time.sleep``, which this wait shares with the
        # host-side tests running meanwhile; one that monkeypatches ``time.sleep`` failed every kernel test.
        # A blocking wait, with a timer thread to end an overdue boot, reads no patchable clock.
        overdue = threading.Timer(left, self.kill)
        overdue.daemon = True
        overdue.start()
        try:
            returncode = self.process.wait()
        finally:
            overdue.cancel()
        if self.timed_out:
            returncode = -1
        wall = time.monotonic() - self.started
        results: dict[str, Any] = {}
        if self.results_file.exists():
            results = json.loads(self.results_file.read_text())
        log = self.log_path.read_text(errors="replace")
        return GuestRun(self.command, returncode, wall, results, log, self.directory, list(self.cases), self.clock)

    @property
    def timed_out(self) -> bool:
        """Whether the guest was killed (for running too long, or the session ending) rather than ending itself."""
        return self._killed

    def kill(self) -> None:
        """End the guest (vng and its QEMU) if it still runs: a session that ends early leaves no QEMU behind."""
        if self.process.poll() is None:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_cases(
    cases: Sequence[str],
    directory: Path | None = None,
    cpus: int = DEFAULT_CPUS,
    memory: str = DEFAULT_MEMORY,
    clock: str = "wall",
) -> GuestBoot:
    """Start booting a guest that runs ``cases`` (all registered ones if empty); see ``run_cases``."""
    kernel = find_kernel()
    check_kernel_readable(kernel)
    shared = directory or Path(tempfile.mkdtemp(prefix="voxkey-guest-"))
    shared.mkdir(parents=True, exist_ok=True)
    results_file = shared / "results.json"
    guest_command = shlex.join(
        [
            sys.executable,
            "-S",
            str(GUEST_RUNNER),
            "--results",
            str(results_file),
            *(f"--site={path}" for path in site_paths()),
            *cases,
        ]
    )
    command = vng_command(kernel, shared, guest_command, cpus, memory, clock)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the runner sets the guest's import path itself
    return GuestBoot(command, env, shared, list(cases), clock)


def run_cases(
    cases: Sequence[str],
    timeout_s: float = 1800.0,
    directory: Path | None = None,
    cpus: int = DEFAULT_CPUS,
    memory: str = DEFAULT_MEMORY,
    clock: str = "wall",
) -> GuestRun:
    """Boot once, run ``cases`` (all registered ones if empty) in the guest, return what they saw.

    Runs headless (stdin is /dev/null, no tty needed), so it works the same in CI. ``clock``:
    ``wall``, or ``instructions`` for cases that judge on-device work by the guest's timers
    (see ``INSTRUCTION_CLOCK``).
    """
    return start_cases(cases, directory, cpus, memory, clock).wait(timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
    """``python tests/kernel/vm.py [case ...]``: boot, run cases, print a summary (debugging aid)."""
    names = list(sys.argv[1:] if argv is None else argv)
    run = run_cases(names)
    print(run.log_tail(200))
    print(f"wall {run.wall_seconds:.1f} s, guest boot {run.boot_seconds} s, rc {run.returncode}, dir {run.directory}")
    for name, outcome in run.results.get("cases", {}).items():
        print(f"{name}: {outcome.get('status')} ({outcome.get('seconds')} s) {outcome.get('error', '')}")
    return 0 if run.returncode == 0 else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
