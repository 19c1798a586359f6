"""Guest-side cases of the kernel harness, registered by name.

A case is a function that runs *inside* the virtme-ng guest (as root, on the
real kernel) and returns a JSON-able dict of raw observations. It asserts
nothing: the host-side pytest test owns the verdict, so a failure shows the
full evidence and a diff instead of a bare guest traceback.

Adding a case: write ``@guest_case("area.what", modules=(...))`` on a function
in any module of this package, then ask for its result in a test with
``@pytest.mark.kernel``, ``@pytest.mark.guest_case("area.what")`` and the
``guest_case_result`` fixture (see ``tests/kernel/conftest.py``). One guest boot runs every case the session needs,
in registration order, so cases of one area may build on each other (e.g. the
gadget stays up between USB cases) but each should also work alone.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import select
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CaseResult = dict[str, Any]


@dataclass(frozen=True)
class GuestContext:
    """What a case knows about the guest it runs in."""

    repo: Path
    """The repository checkout (read-only in the guest)."""
    work_dir: Path
    """A writable directory shared with the host (results, logs)."""
    python: str
    """The interpreter that runs the harness."""
    site_paths: tuple[str, ...] = ()
    """Its package directories (the guest runs Python with ``-S``, see ``vm.site_paths``)."""

    def voxkey_command(self, *args: str) -> list[str]:
        """``voxkey ARGS`` from this checkout, started as quickly as the guest allows."""
        return [self.python, "-S", "-m", "voxkey", *args]

    def voxkey_env(self) -> dict[str, str]:
        """Environment that makes ``voxkey_command`` import this checkout's code and its dependencies."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.repo / "firmware"), *self.site_paths])
        env["PYTHONUNBUFFERED"] = "1"
        return env


CaseFunction = Callable[[GuestContext], CaseResult]


@dataclass(frozen=True)
class Case:
    name: str
    function: CaseFunction
    modules: tuple[str, ...]
    """Kernel modules to load before the case runs (modprobe names)."""
    timeout_s: float


CASES: dict[str, Case] = {}


def guest_case(
    name: str, modules: tuple[str, ...] = (), timeout_s: float = 300.0
) -> Callable[[CaseFunction], CaseFunction]:
    """Register ``function`` as the guest case ``name``."""

    def register(function: CaseFunction) -> CaseFunction:
        if name in CASES:
            raise ValueError(f"guest case {name!r} registered twice")
        CASES[name] = Case(name, function, modules, timeout_s)
        return function

    return register


def load_all_cases() -> tuple[dict[str, Case], dict[str, str]]:
    """Import every module of this package so their cases register.

    A module that fails to import costs only its own cases: the error is
    returned (module → message) instead of stopping every other area's cases.
    """
    errors: dict[str, str] = {}
    for module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        try:
            importlib.import_module(f"{__name__}.{module.name}")
        except Exception as exc:
            errors[module.name] = f"{type(exc).__name__}: {exc}"
    return CASES, errors


# --------------------------------------------------------------------------- helpers shared by the keyboard cases


def wait_for(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passed; its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


NEW_KEYBOARD = -1
"""Event type of the recorder's marker "a new keyboard device appeared" (replug, reconnection)."""
HOST_REPEAT_DELAY_MS = 10_000
"""The host's autorepeat delay for the recorded keyboard (Linux default 250 ms).

Under QEMU without KVM on a busy machine the guest's vCPU is descheduled while
guest time keeps running: with a load average of 15-20 on the 2-core dev box we
measured gaps of up to 2.2 s between *any* two consecutive key events (after
presses and after releases alike), so the default 250 ms timer fired between a
press and its release one USB poll later: repeats no real host sees. A key held
10 s still repeats and fails the test, a never-released key fails the
keys-held-at-end check, and the decoder reports the longest hold.
"""


class KeyRecorder(threading.Thread):
    """Reads the host's keyboard evdev node for as long as it runs, across unplug/replug and reconnections.

    ``find_device`` names the /dev/input/event* node of the keyboard under test
    (None while there is none). The recorder also plays the host's part for
    Caps Lock: a Caps Lock key press toggles the keyboard's LED as a desktop
    would. Every LED state the host sets is recorded as an EV_LED event so the
    decoder knows when Caps Lock was on.
    """

    def __init__(self, find_device: Callable[[], str | None], poll_s: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.find_device = find_device
        self.poll_s = poll_s
        """Pause between looks for the device. Each look parses /proc/bus/input/devices at SCHED_FIFO:
        every 2 ms that took half the emulated vCPU while a Bluetooth host had not yet made its keyboard."""
        self.events: list[list[float]] = []
        self.generations: list[dict[str, Any]] = []
        self.opened = threading.Event()
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._device: Any = None
        self._caps = False
        self.key_presses = 0
        self.last_event_at = time.monotonic()
        self.realtime = "not started"

    def run(self) -> None:
        import evdev

        self.realtime = _make_this_thread_realtime()
        while not self._stop_requested.is_set():
            path = self.find_device()
            if path is None:
                time.sleep(self.poll_s)
                continue
            try:
                device = evdev.InputDevice(path)
            except OSError:
                time.sleep(self.poll_s)
                continue
            self._follow(device, path)
            # A node that vanished can stay listed a while (BlueZ's hog tears its uhid device down
            # when the host disconnects): reopening it in a tight loop at SCHED_FIFO would starve
            # the guest's single vCPU.
            time.sleep(max(self.poll_s, 0.005))

    def _follow(self, device: Any, path: str) -> None:
        from evdev import ecodes

        generation: dict[str, Any] = {"path": path, "opened_at": time.time(), "name": device.name}
        self.generations.append(generation)
        try:
            # EVIOCGREP/EVIOCSREP order: (delay ms, period ms). python-evdev's docstring says
            # (rate, delay); following it set the *period* to 10 s and left the delay at 250 ms,
            # so a key held 275 ms in the Bluetooth guest repeated.
            device.repeat = (HOST_REPEAT_DELAY_MS, device.repeat[1])
            generation["repeat"] = {"delay_ms": device.repeat[0], "period_ms": device.repeat[1]}
        except OSError as exc:
            generation["repeat"] = f"not set: {exc}"
        with self._lock:
            self._device = device
            self._record(time.time(), NEW_KEYBOARD, 0, 0)
            self._caps = ecodes.LED_CAPSL in device.leds()
            self._record(time.time(), ecodes.EV_LED, ecodes.LED_CAPSL, int(self._caps))
        self.opened.set()
        try:
            while not self._stop_requested.is_set():
                ready, _, _ = select.select([device.fd], [], [], 0.05)
                if ready:
                    for event in device.read():
                        self._handle(event)
        except OSError as exc:
            generation["lost"] = f"{type(exc).__name__}: {exc}"
        finally:
            generation["closed_at"] = time.time()
            self.opened.clear()
            with self._lock:
                self._device = None
            with contextlib.suppress(OSError):
                device.close()

    def _handle(self, event: Any) -> None:
        from evdev import ecodes

        if event.type == ecodes.EV_SYN and event.code == ecodes.SYN_DROPPED:
            with self._lock:  # the kernel's buffer for us overflowed: this recording has holes
                self._record(event.timestamp(), event.type, event.code, event.value)
            return
        if event.type != ecodes.EV_KEY:
            return  # EV_LED echoes of our own writes, EV_MSC scan codes, EV_SYN_REPORT
        with self._lock:
            self._record(event.timestamp(), event.type, event.code, event.value)
            if event.value == 1 and event.code not in (ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT):
                self.key_presses += 1
            if event.code == ecodes.KEY_CAPSLOCK and event.value == 1:
                self._set_caps_locked(not self._caps)

    def _record(self, timestamp: float, ev_type: int, code: int, value: int) -> None:
        self.events.append([timestamp, ev_type, code, value])
        self.last_event_at = time.monotonic()

    def set_caps_lock(self, on: bool) -> None:
        """Switch Caps Lock from the host side: an EV_LED write to the host's evdev node."""
        with self._lock:
            self._set_caps_locked(on)

    def _set_caps_locked(self, on: bool) -> None:
        from evdev import ecodes

        if self._device is None:
            raise RuntimeError("keyboard not open")
        self._device.write(ecodes.EV_LED, ecodes.LED_CAPSL, int(on))
        self._device.write(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
        self._caps = on
        self._record(time.time(), ecodes.EV_LED, ecodes.LED_CAPSL, int(on))

    def wait_quiet(self, quiet_s: float = 1.5, timeout_s: float = 30) -> None:
        """Wait until no key event arrived for ``quiet_s`` (the host got everything in flight)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and time.monotonic() - self.last_event_at < quiet_s:
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop_requested.set()
        self.join(5)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"events": list(self.events), "generations": list(self.generations), "reader": self.realtime}


def _make_this_thread_realtime() -> str:
    """SCHED_FIFO for the reader thread: evdev keeps only a small buffer per reader.

    When the reader falls behind, the kernel drops events (SYN_DROPPED). In an
    emulated guest busy with voxkey's own Python, an ordinary-priority reader
    fell behind for ~0.6 s and lost 21 characters' worth of events.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))  # 0 = this thread on Linux
    except OSError as exc:
        return f"not realtime: {exc}"
    return "SCHED_FIFO 50"


def start_recorder(
    find_device: Callable[[], str | None], open_timeout_s: float | None = 30, poll_s: float = 0.002
) -> KeyRecorder:
    """A running recorder; with ``open_timeout_s`` it must have opened the keyboard by then."""
    recorder = KeyRecorder(find_device, poll_s)
    recorder.start()
    if open_timeout_s is not None and not recorder.opened.wait(open_timeout_s):
        recorder.stop()
        raise RuntimeError(f"the host's keyboard evdev node did not open within {open_timeout_s:.0f} s")
    return recorder


def finish(process: subprocess.Popen[str], text: str | None, timeout_s: float) -> dict[str, Any]:
    """Feed ``text`` to a ``voxkey type -`` process (None: its stdin is already dealt with), collect its outcome."""
    started = time.monotonic()
    try:
        stdout, stderr = process.communicate(text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return {"rc": None, "timed_out": True, "stdout": stdout, "stderr": stderr[-4000:]}
    return {
        "rc": process.returncode,
        "stdout": stdout,
        "stderr": stderr[-4000:],
        "seconds": round(time.monotonic() - started, 3),
    }
