"""USB keyboard path on a real kernel: gadget (dummy_udc) → host's usbhid → evdev.

dummy_hcd gives the guest both ends of a USB cable: ``dummy_udc.0`` is the
device side our configfs gadget binds to, and its host side enumerates the
gadget like a PC would, so the host kernel creates an input device for it.
These cases record what that host sees; ``test_usb_keyboard.py`` judges it.
"""

from __future__ import annotations

import os
import random
import re
import string
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import evdev
from evdev import ecodes

from tests.kernel.cases import (
    CaseResult,
    GuestContext,
    KeyRecorder,
    finish,
    guest_case,
    wait_for,
)
from tests.kernel.cases import start_recorder as start_shared_recorder

UDC = "dummy_udc.0"
VENDOR, PRODUCT = 0x1D6B, 0x0104
MODULES = ("dummy_hcd", "libcomposite", "usb_f_hid", "usbhid", "hid_generic", "evdev")
CONFIGFS_GADGETS = Path("/sys/kernel/config/usb_gadget")
UDC_STATE = Path("/sys/class/udc") / UDC / "state"


def typing_text(length: int = 2400, seed: int = 2) -> str:
    """Deterministic text with every printable ASCII character, doubled letters, newlines and tabs."""
    rng = random.Random(seed)
    printable = "".join(chr(code) for code in range(0x20, 0x7F))
    parts = [
        printable,
        "\n",
        " ".join(char * 2 for char in string.ascii_letters + string.digits + string.punctuation),
        "\n\tTabbed line with doubled letters: bookkeeper, committee, Mississippi, AAbbCC, 1100.\n",
    ]
    text = "".join(parts)
    while len(text) < length:
        word = "".join(rng.choice(printable[1:]) for _ in range(rng.randint(1, 9)))
        if rng.random() < 0.3:
            position = rng.randrange(len(word))
            word = word[:position] + word[position] * 2 + word[position:]
        text += word + rng.choice(" " * 6 + "\n\t")
    return text


def gadget(context: GuestContext, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(context.repo / "gadget" / "voxkey-gadget"), *args], capture_output=True, text=True, check=False
    )


def _completed(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return {"rc": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def find_keyboard_event() -> str | None:
    """The /dev/input/event* node the host made for our gadget, from /proc/bus/input/devices."""
    for block in Path("/proc/bus/input/devices").read_text().split("\n\n"):
        if f"Vendor={VENDOR:04x} Product={PRODUCT:04x}" not in block:
            continue
        match = re.search(r"^H: Handlers=.*\b(event\d+)\b", block, re.MULTILINE)
        if match:
            return f"/dev/input/{match.group(1)}"
    return None


def keyboard_block() -> str | None:
    for block in Path("/proc/bus/input/devices").read_text().split("\n\n"):
        if f"Vendor={VENDOR:04x} Product={PRODUCT:04x}" in block:
            return block
    return None


def udc_state() -> str:
    try:
        return UDC_STATE.read_text().strip()
    except OSError:
        return "absent"


def ensure_gadget_up(context: GuestContext) -> dict[str, Any]:
    """Gadget bound and the host's keyboard present (idempotent, so each case can start here)."""
    up = gadget(context, "up", "--udc", UDC)
    configured = wait_for(lambda: udc_state() == "configured", 60)
    listed = wait_for(lambda: find_keyboard_event() is not None, 60)
    return {"up": _completed(up), "configured": configured, "keyboard_listed": listed, "event": find_keyboard_event()}


def usb_device_dir() -> Path | None:
    """The host's sysfs directory of our gadget (e.g. /sys/bus/usb/devices/1-1)."""
    for candidate in Path("/sys/bus/usb/devices").iterdir():
        try:
            vendor = (candidate / "idVendor").read_text().strip()
            product = (candidate / "idProduct").read_text().strip()
        except OSError:
            continue
        if (int(vendor, 16), int(product, 16)) == (VENDOR, PRODUCT):
            return candidate
    return None


def hidg_device(context: GuestContext) -> str:
    status = gadget(context, "status").stdout
    match = re.search(r"^device: (\S+)", status, re.MULTILINE)
    return match.group(1) if match else "/dev/hidg0"


def start_recorder() -> KeyRecorder:
    """The shared recorder on the gadget's keyboard as the guest's USB host sees it."""
    return start_shared_recorder(find_keyboard_event)


def voxkey_type(
    context: GuestContext, text: str, device: str, wait_s: float = 120, verbose: bool = False
) -> subprocess.Popen[str]:
    flags = ("-v",) if verbose else ()
    return subprocess.Popen(
        context.voxkey_command(
            *flags,
            *("type", "-", "--transport", "usb", "--device", device, "--layout", "us", "--udc", UDC),
            *("--wait", str(wait_s)),
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=context.voxkey_env(),
    )


@guest_case("usb.gadget_up", modules=MODULES, timeout_s=180)
def gadget_up(context: GuestContext) -> CaseResult:
    """`up` twice, then what the host enumerated: input device, descriptor, endpoint."""
    first = ensure_gadget_up(context)
    second = gadget(context, "up", "--udc", UDC)
    wait_for(lambda: find_keyboard_event() is not None, 30)
    device_dir = usb_device_dir()
    descriptors = sorted(Path("/sys/bus/hid/devices").glob(f"0003:{VENDOR:04X}:{PRODUCT:04X}.*/report_descriptor"))
    interface = next(iter(sorted(device_dir.glob("*:1.0")))) if device_dir else None
    endpoint = interface / "ep_81" if interface else None
    return {
        "first_up": first,
        "second_up": _completed(second),
        "status": _completed(gadget(context, "status")),
        "udc_state": udc_state(),
        "input_block": keyboard_block(),
        "input_devices_with_our_ids": Path("/proc/bus/input/devices")
        .read_text()
        .count(f"Vendor={VENDOR:04x} Product={PRODUCT:04x}"),
        "host_report_descriptor": descriptors[0].read_bytes().hex() if descriptors else None,
        "descriptor_file": str(context.repo / "gadget" / "keyboard-report-descriptor.hex"),
        "usb": {
            "manufacturer": _read(device_dir, "manufacturer"),
            "product": _read(device_dir, "product"),
            "serial": _read(device_dir, "serial"),
            "speed_mbps": _read(device_dir, "speed"),
            "interface_class": _read(interface, "bInterfaceClass"),
            "interface_subclass": _read(interface, "bInterfaceSubClass"),
            "interface_protocol": _read(interface, "bInterfaceProtocol"),
            "ep_81_interval": _read(endpoint, "interval"),
            "ep_81_bInterval": _read(endpoint, "bInterval"),
        },
        "hidg": hidg_device(context),
    }


def _read(directory: Path | None, name: str) -> str | None:
    if directory is None:
        return None
    try:
        return (directory / name).read_text().strip()
    except OSError:
        return None


RAW_REPORTS = [
    bytes([0, 0, 0x04, 0, 0, 0, 0, 0]),  # a
    bytes(8),
    bytes([0x02, 0, 0x04, 0, 0, 0, 0, 0]),  # shift a
    bytes(8),
    bytes([0, 0, 0x28, 0, 0, 0, 0, 0]),  # enter
    bytes(8),
]


@guest_case("usb.raw_reports", modules=MODULES, timeout_s=120)
def raw_reports(context: GuestContext) -> CaseResult:
    """Hand-written reports to /dev/hidg0 (no voxkey code): the kernel path alone."""
    setup = ensure_gadget_up(context)
    recorder = start_recorder()
    try:
        device = hidg_device(context)
        fd = os.open(device, os.O_RDWR)
        try:
            for report in RAW_REPORTS:
                os.write(fd, report)
        finally:
            os.close(fd)
        recorder.wait_quiet(1.0)
    finally:
        recorder.stop()
    return {"setup": setup, "reports": [r.hex() for r in RAW_REPORTS], **recorder.snapshot()}


@guest_case("usb.type_text", modules=MODULES, timeout_s=600)
def type_text(context: GuestContext) -> CaseResult:
    """`voxkey type` of a 2,400-character text while the host's evdev node is read concurrently."""
    setup = ensure_gadget_up(context)
    text = typing_text()
    recorder = start_recorder()
    try:
        process = voxkey_type(context, text, hidg_device(context))
        run = finish(process, text, 480)
        recorder.wait_quiet()
    finally:
        recorder.stop()
    return {"setup": setup, "text": text, "voxkey": run, **recorder.snapshot()}


@guest_case("usb.caps_lock", modules=MODULES, timeout_s=600)
def caps_lock(context: GuestContext) -> CaseResult:
    """Host switches Caps Lock on (EV_LED write to its evdev node), then voxkey types."""
    setup = ensure_gadget_up(context)
    text = typing_text(1200, seed=3)
    recorder = start_recorder()
    try:
        recorder.set_caps_lock(True)
        time.sleep(1.0)  # the LED output report travels host → gadget before typing starts
        process = voxkey_type(context, text, hidg_device(context))
        run = finish(process, text, 480)
        recorder.wait_quiet()
        caps_at_end = ecodes.LED_CAPSL in evdev.InputDevice(find_keyboard_event() or "").leds()
        recorder.set_caps_lock(False)
        time.sleep(0.5)
    finally:
        recorder.stop()
    return {"setup": setup, "text": text, "voxkey": run, "caps_led_on_at_end": caps_at_end, **recorder.snapshot()}


TRACING = Path("/sys/kernel/tracing")
KPROBE = "voxkey_input_event"


def _append(path: Path, line: str) -> None:
    """One O_APPEND write: Python's "a" mode seeks to the end, which tracefs refuses (EINVAL)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class InputCoreWitness:
    """Every key event the host's input core receives, from before a device exists.

    A kprobe on ``input_event(dev, type, code, value)`` (x86-64 arguments in
    si, dx, cx) logs key events into the kernel's trace buffer, independent
    of any reader opening a /dev/input node. Used only to explain a replug
    failure: did the host kernel get the keys the evdev reader missed?
    """

    def __init__(self) -> None:
        self.error: str | None = None
        try:
            # A kernel oops turns tracing off for good (oops_enter calls tracing_off): one in a Bluetooth
            # case before this one left every later witness with an empty trace and no error.
            (TRACING / "tracing_on").write_text("1")
            (TRACING / "buffer_size_kb").write_text("8192")
            (TRACING / "trace").write_text("")
            probe = f"p:{KPROBE} input_event ev_type=%si:u32 ev_code=%dx:u32 ev_value=%cx:s32\n"
            _append(TRACING / "kprobe_events", probe)
            (TRACING / "events/kprobes" / KPROBE / "filter").write_text("ev_type == 1")
            (TRACING / "events/kprobes" / KPROBE / "enable").write_text("1")
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc} (while setting up the kprobe)"

    def events(self) -> list[list[float]]:
        """Key events as [trace time, EV_KEY, code, value] in arrival order.

        None at all is the witness failing, not the host dropping every key: ``error`` then says what the
        tracer's own counters show (the probe's hits and misses, whether tracing was on, the buffer's counts).
        """
        if self.error:
            return []
        pattern = re.compile(r"\s(\d+\.\d+): " + KPROBE + r": .*ev_type=(\d+) ev_code=(\d+) ev_value=(-?\d+)")
        found = []
        trace = (TRACING / "trace").read_text()
        for line in trace.splitlines():
            match = pattern.search(line)
            if match:
                found.append([float(match[1]), int(match[2]), int(match[3]), int(match[4])])
        if not found:
            profiles = (TRACING / "kprobe_profile").read_text().splitlines()
            profile = next((line.split() for line in profiles if KPROBE in line), [])
            entries = next((line for line in trace.splitlines() if "entries-in-buffer" in line), "no header")
            tracing_on = (TRACING / "tracing_on").read_text().strip()
            self.error = (
                f"no key event traced: kprobe_profile {profile}, tracing_on {tracing_on}, {entries.strip('# ')}"
            )
        return found

    def close(self) -> None:
        if self.error:
            return
        try:
            (TRACING / "events/kprobes" / KPROBE / "enable").write_text("0")
            _append(TRACING / "kprobe_events", f"-:{KPROBE}\n")
        except OSError as exc:
            self.error = f"close: {exc}"


UNPLUGS = 3
"""Unplugs per text, at 1/5, 2/5 and 3/5 of it."""


@guest_case("usb.unbind_rebind", modules=MODULES, timeout_s=1200)
def unbind_rebind(context: GuestContext) -> CaseResult:
    """Unplug (UDC unbind) mid-text, replug 3 s later, three times: the host must still get the exact text."""
    setup = ensure_gadget_up(context)
    text = typing_text(2400, seed=4)
    witness = InputCoreWitness()
    recorder = start_recorder()
    timeline: dict[str, Any] = {"unplugs": []}
    try:
        process = voxkey_type(context, text, hidg_device(context), wait_s=120, verbose=True)
        assert process.stdin is not None
        process.stdin.write(text)
        process.stdin.close()
        for number in range(1, UNPLUGS + 1):
            wait_for(
                lambda n=number: recorder.key_presses >= n * len(text) // (UNPLUGS + 2) or process.poll() is not None,
                600,
                0.005,
            )
            timeline["unplugs"].append(_unplug_and_replug(context, recorder, process))
        first = timeline["unplugs"][0]
        timeline["presses_before_unbind"] = first["presses_before_unbind"]
        timeline["typing_still_running_at_unbind"] = all(u["typing_still_running"] for u in timeline["unplugs"])
        timeline["rebind"] = {"rc": max(u["rebind"]["rc"] for u in timeline["unplugs"])}
        run = _typing_outcome(process)
        recorder.wait_quiet()
    finally:
        recorder.stop()
        input_core = witness.events()
        witness.close()
    return {
        "setup": setup,
        "text": text,
        "voxkey": run,
        "timeline": timeline,
        "input_core_events": input_core,
        "input_core_witness": witness.error or "ok",
        **recorder.snapshot(),
    }


def _typing_outcome(process: subprocess.Popen[str]) -> dict[str, Any]:
    """How a ``voxkey type`` whose stdin is already closed ended (killed after 600 s): code and output."""
    try:
        process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
    stdout = process.stdout.read() if process.stdout else ""
    stderr = process.stderr.read() if process.stderr else ""
    return {"rc": process.returncode, "stdout": stdout, "stderr": stderr[-6000:]}


def _unplug_and_replug(context: GuestContext, recorder: KeyRecorder, process: subprocess.Popen[str]) -> dict[str, Any]:
    unplug: dict[str, Any] = {
        "presses_before_unbind": recorder.key_presses,
        "typing_still_running": process.poll() is None,
    }
    (CONFIGFS_GADGETS / "voxkey" / "UDC").write_text("\n")
    unplug["unbound_at"] = time.time()
    wait_for(lambda: udc_state() != "configured", 10)
    unplug["udc_state_after_unbind"] = udc_state()
    time.sleep(3.0)
    unplug["presses_while_unbound"] = recorder.key_presses - unplug["presses_before_unbind"]
    unplug["rebind"] = _completed(gadget(context, "up", "--udc", UDC))
    unplug["rebound_at"] = time.time()
    return unplug


class BusWitness:
    """Every interrupt-IN transfer the host controller completed for the gadget, read from usbmon.

    What crossed the cable, whatever the host's drivers did with it next: with
    ``InputCoreWitness`` it tells a report the device never delivered from one
    the host received and dropped.
    """

    def __init__(self) -> None:
        self.error: str | None = None
        self._data = bytearray()
        device = usb_device_dir()
        debugfs = Path("/sys/kernel/debug")
        if not (debugfs / "usb").exists():
            subprocess.run(["mount", "-t", "debugfs", "debugfs", str(debugfs)], capture_output=True, check=False)
        if device is None:
            self.error = "the gadget is not enumerated"
            return
        self.address = f"Ii:{int((device / 'busnum').read_text())}:{int((device / 'devnum').read_text()):03d}:"
        try:
            self._fd = os.open(debugfs / "usb" / "usbmon" / f"{int((device / 'busnum').read_text())}u", os.O_RDONLY)
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc} (usbmon)"
            return
        threading.Thread(target=self._read, name="usbmon", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError as exc:
                self.error = f"read: {exc}"
                return
            if not chunk:
                return
            self._data += chunk

    def reports(self) -> list[str]:
        """The 8-byte reports of completed interrupt-IN transfers, as hex, in order."""
        found = []
        for line in bytes(self._data).decode(errors="replace").splitlines():
            words = line.split()  # tag time C Ii:bus:dev:ep status:interval length = data...
            completed = len(words) > 6 and words[2] == "C" and words[4].split(":")[0] == "0" and "=" in words
            if completed and words[3].startswith(self.address):
                data = "".join(words[words.index("=") + 1 :])
                if len(data) == 16:
                    found.append(data)
        return found

    def port_requests(self) -> list[str]:
        """Port requests (bmRequestType 0x23) the host sent its root hub, as "request feature port".

        SET_FEATURE (03) and CLEAR_FEATURE (01) of PORT_SUSPEND (0002) are the
        bus-level record of the host suspending and resuming the gadget's port.
        """
        root_hub = self.address.replace("Ii:", "Co:").rsplit(":", 2)[0] + ":001:0"
        found = []
        for line in bytes(self._data).decode(errors="replace").splitlines():
            words = line.split()  # tag time S Co:bus:001:0 s 23 request wValue wIndex wLength length
            if len(words) > 8 and words[2] == "S" and words[3] == root_hub and words[4:6] == ["s", "23"]:
                found.append(" ".join(words[6:9]))
        return found


STALL_S = 3.0
"""How long the host stops polling: far past any write timeout in the USB link."""


@guest_case("usb.host_stops_polling", modules=(*MODULES, "usbmon"), timeout_s=1200)
def host_stops_polling(context: GuestContext) -> CaseResult:
    """The host stops reading the keyboard mid-text for 3 s, then reads on; the gadget stays configured.

    What a host does when its HID driver is unbound (here: usbhid's sysfs
    ``unbind``), or when a busy or broken host stops scheduling interrupt-IN
    transfers: no more polls, no reset, no suspend. The report f_hid had
    queued waits in the UDC; everything after it waits in voxkey.
    """
    setup = ensure_gadget_up(context)
    text = typing_text(1200, seed=5)
    witness = InputCoreWitness()
    bus = BusWitness()
    recorder = start_recorder()
    stall: dict[str, Any] = {}
    try:
        process = voxkey_type(context, text, hidg_device(context), wait_s=120, verbose=True)
        assert process.stdin is not None
        process.stdin.write(text)
        process.stdin.close()
        wait_for(lambda: recorder.key_presses >= len(text) // 3 or process.poll() is not None, 600, 0.005)
        stall = _stop_polling(recorder, process)
        run = _typing_outcome(process)
        recorder.wait_quiet()
    finally:
        recorder.stop()
        input_core = witness.events()
        witness.close()
    return {
        "setup": setup,
        "text": text,
        "voxkey": run,
        "stall": stall,
        "bus_reports": bus.reports(),
        "bus_witness": bus.error or "ok",
        "input_core_events": input_core,
        "input_core_witness": witness.error or "ok",
        **recorder.snapshot(),
    }


def _stop_polling(recorder: KeyRecorder, process: subprocess.Popen[str]) -> dict[str, Any]:
    device = usb_device_dir()
    interface = next(iter(sorted(device.glob(f"{device.name}:*.0")))).name if device else ""
    usbhid = Path("/sys/bus/usb/drivers/usbhid")
    stall: dict[str, Any] = {
        "interface": interface,
        "presses_before": recorder.key_presses,
        "typing_still_running": process.poll() is None,
    }
    (usbhid / "unbind").write_text(interface)
    stall["keyboard_gone"] = wait_for(lambda: find_keyboard_event() is None, 10)
    time.sleep(STALL_S)
    stall["udc_state_during"] = udc_state()
    stall["presses_during"] = recorder.key_presses - stall["presses_before"]
    (usbhid / "bind").write_text(interface)
    stall["keyboard_back"] = wait_for(lambda: find_keyboard_event() is not None, 30)
    return stall


@guest_case("usb.gadget_down", modules=MODULES, timeout_s=120)
def gadget_down(context: GuestContext) -> CaseResult:
    """`down` removes everything `up` made: nothing left in configfs, the host's keyboard gone."""
    setup = ensure_gadget_up(context)
    down = gadget(context, "down")
    wait_for(lambda: find_keyboard_event() is None, 30)
    leftover = sorted(str(p) for p in CONFIGFS_GADGETS.rglob("*")) if CONFIGFS_GADGETS.is_dir() else []
    again = gadget(context, "down")
    status = gadget(context, "status")
    udc_function = _read(Path("/sys/class/udc") / UDC, "function")
    return {
        "setup": setup,
        "down": _completed(down),
        "down_again": _completed(again),
        "status_after": _completed(status),
        "configfs_leftover": leftover,
        "keyboard_after": keyboard_block(),
        "udc_function_after": udc_function,
        "udc_state_after": udc_state(),
    }


def _delivery(events: list[list[float]]) -> dict[str, Any]:
    """Characters the host got and how fast: first key press to last key release, host timestamps."""
    keys = [event for event in events if event[1] == ecodes.EV_KEY]
    presses = [event for event in keys if event[3] == 1 and event[2] not in (ecodes.KEY_LEFTSHIFT,)]
    dropped = sum(1 for event in events if event[1] == ecodes.EV_SYN and event[2] == ecodes.SYN_DROPPED)
    if len(keys) < 2:
        return {"chars": len(presses), "seconds": None, "chars_per_s": None, "reader_dropped": dropped}
    seconds = keys[-1][0] - keys[0][0]
    return {
        "chars": len(presses),
        "seconds": round(seconds, 3),
        "chars_per_s": round(len(presses) / seconds, 1),
        "reader_dropped": dropped,
    }


@guest_case("usb.throughput", modules=MODULES, timeout_s=900)
def throughput(context: GuestContext) -> CaseResult:
    """Benchmark (benchmarks/usb_throughput.py), not a test: chars/s the host receives."""
    setup = ensure_gadget_up(context)
    device_dir = usb_device_dir()
    interface = next(iter(sorted(device_dir.glob("*:1.0")))) if device_dir else None
    endpoint = interface / "ep_81" if interface else None
    raw_chars = 1000
    recorder = start_recorder()
    try:
        fd = os.open(hidg_device(context), os.O_RDWR)
        started = time.monotonic()
        try:
            for index in range(raw_chars):
                os.write(fd, bytes([0, 0, 0x04 + index % 26, 0, 0, 0, 0, 0]))
                os.write(fd, bytes(8))
        finally:
            os.close(fd)
        raw_write_seconds = time.monotonic() - started
        recorder.wait_quiet(1.0)
        raw = {
            **_delivery(recorder.snapshot()["events"]),
            "writer_chars": raw_chars,
            "writer_seconds": round(raw_write_seconds, 3),
            # A blocking write returns only once the host polled the previous report,
            # so the writer's pace is the host's pace even when the evdev reader drops events.
            "writer_chars_per_s": round(raw_chars / raw_write_seconds, 1),
        }
    finally:
        recorder.stop()
    text = typing_text(2000, seed=5)
    recorder = start_recorder()
    try:
        started = time.monotonic()
        run = finish(voxkey_type(context, text, hidg_device(context)), text, 600)
        wall = time.monotonic() - started
        recorder.wait_quiet()
        typed = {**_delivery(recorder.snapshot()["events"]), "process_wall_seconds": round(wall, 3), "rc": run["rc"]}
    finally:
        recorder.stop()
    return {
        "setup": setup,
        "speed_mbps": _read(device_dir, "speed"),
        "ep_81_bInterval": _read(endpoint, "bInterval"),
        "ep_81_interval": _read(endpoint, "interval"),
        "raw_hidg_writes": raw,
        "voxkey_type": typed,
        "text_chars": len(text),
        "guest_cpus": os.cpu_count(),
    }


KEY_X_PRESS = bytes([0, 0, 0x1B, 0, 0, 0, 0, 0])
"""The report a writer that dies mid-key leaves behind: "x" pressed."""
DIE_MID_KEY = """
import os, select, signal, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, bytes.fromhex(sys.argv[2]))
select.select([], [fd], [], 10)  # the host polled the press
os.kill(os.getpid(), signal.SIGKILL)
"""
ERROR_MID_KEY = """
import sys
from voxkey.errors import TransportError
from voxkey.keymap import Layout
from voxkey.transports.base import Keyboard
from voxkey.transports.usb import UsbHidLink

class FailsMidKey:
    '''The gadget's link, failing with an error (not a host that left) right after the 4th report, a press.'''
    def __init__(self, link):
        self.link, self.name, self.sent = link, link.name, 0
    def wait_for_host(self, deadline):
        self.link.wait_for_host(deadline)
    def send(self, report, deadline):
        if self.sent == 5:
            raise TransportError("injected: the link failed mid-key")
        self.link.send(report, deadline)
        self.sent += 1
    def led_state(self):
        return self.link.led_state()
    def release_all(self):
        self.link.release_all()
    def close(self):
        self.link.close()

keyboard = Keyboard(FailsMidKey(UsbHidLink.for_gadget(sys.argv[1], sys.argv[2], require=True)), Layout.load("us"))
try:
    keyboard.type("abcdef")
except TransportError as exc:
    print(exc)
finally:
    keyboard.close()
"""
REPEAT_WAIT_S = 12.0
"""Longer than the recorder's host autorepeat delay (HOST_REPEAT_DELAY_MS): a stuck key repeats by then."""


def _held_keys() -> list[int]:
    """Keys the host's input core holds down now (EVIOCGKEY), not what the recorder inferred."""
    path = find_keyboard_event()
    if path is None:
        return []
    return sorted(evdev.InputDevice(path).active_keys())


def _mark(recorder: KeyRecorder) -> int:
    return len(recorder.snapshot()["events"])


@guest_case("usb.interrupted_typing", modules=MODULES, timeout_s=900)
def interrupted_typing(context: GuestContext) -> CaseResult:
    """Typing cut off (SIGKILL mid-text, a writer killed mid-key, an error from the link mid-key): keys left held?

    Then an empty ``voxkey type``: a new USB link must release whatever the dead writer left held.
    The host's auto-repeat delay is the recorder's (10 s): ``REPEAT_WAIT_S`` later a stuck key has repeated.
    """
    setup = ensure_gadget_up(context)
    device = hidg_device(context)
    recorder = start_recorder()
    phases: dict[str, Any] = {}
    try:
        text = typing_text(2400, seed=6)
        process = voxkey_type(context, text, device, wait_s=120)
        assert process.stdin is not None
        process.stdin.write(text)
        process.stdin.close()
        wait_for(lambda: recorder.key_presses >= 60 or process.poll() is not None, 600, 0.002)
        still_typing = process.poll() is None
        process.kill()
        process.wait(30)
        time.sleep(1.0)
        phases["sigkill_voxkey"] = {
            "still_typing_when_killed": still_typing,
            "presses_before_kill": recorder.key_presses,
            "held_after_kill": _held_keys(),
            "events_until": _mark(recorder),
            "stderr": (process.stderr.read() if process.stderr else "")[-2000:],
        }

        start = _mark(recorder)
        died = subprocess.run(
            [context.python, "-S", "-c", DIE_MID_KEY, device, KEY_X_PRESS.hex()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        time.sleep(REPEAT_WAIT_S)
        phases["writer_killed_mid_key"] = {
            "rc": died.returncode,
            "stderr": died.stderr[-2000:],
            "held": _held_keys(),
            "events_from": start,
            "events_until": _mark(recorder),
        }

        start = _mark(recorder)
        restart = finish(voxkey_type(context, "", device, wait_s=60), "", 400)
        time.sleep(REPEAT_WAIT_S)
        phases["next_start"] = {
            "voxkey": restart,
            "held": _held_keys(),
            "events_from": start,
            "events_until": _mark(recorder),
        }

        start = _mark(recorder)
        failed = subprocess.run(
            [*context.voxkey_command()[:2], "-c", ERROR_MID_KEY, device, UDC],
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
            env=context.voxkey_env(),
        )
        time.sleep(REPEAT_WAIT_S)
        phases["link_error_mid_key"] = {
            "rc": failed.returncode,
            "stdout": failed.stdout[-2000:],
            "stderr": failed.stderr[-2000:],
            "held": _held_keys(),
            "events_from": start,
            "events_until": _mark(recorder),
        }
        recorder.wait_quiet(1.0)
    finally:
        recorder.stop()
    return {"setup": setup, "text": text, "phases": phases, **recorder.snapshot()}


SUSPEND_S = 3.0
"""How long the host keeps the keyboard suspended: inside ``output.resume_within_s`` (5 s)."""


class StateWatcher:
    """Every change of the gadget's and the host's view of the link, polled every 5 ms, as [time, udc, self, host].

    Device side: the UDC's ``state`` (what voxkey reads) and ``is_selfpowered``
    (the composite driver marks the gadget self-powered when its suspend callback
    runs: a witness that the suspend reached the gadget even if ``state`` stays
    ``configured``). Host side: ``power/runtime_status`` of the USB device (what
    the host did).
    """

    def __init__(self, device: Path | None) -> None:
        self.changes: list[list[Any]] = []
        self._power = device / "power" / "runtime_status" if device else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="udc-state", daemon=True)
        self._thread.start()

    def _now(self) -> tuple[str, str | None, str | None]:
        host: str | None = None
        if self._power is not None:
            try:
                host = self._power.read_text().strip()
            except OSError:
                host = "absent"
        return udc_state(), _read(UDC_STATE.parent, "is_selfpowered"), host

    def _watch(self) -> None:
        last: tuple[str, str | None, str | None] | None = None
        while not self._stop.is_set():
            now = self._now()
            if now != last:
                self.changes.append([time.time(), *now])
                last = now
            time.sleep(0.005)

    def stop(self) -> list[list[Any]]:
        self._stop.set()
        self._thread.join(5)
        return self.changes


@guest_case("usb.host_suspends", modules=(*MODULES, "usbmon"), timeout_s=1200)
def host_suspends(context: GuestContext) -> CaseResult:
    """The host suspends the keyboard mid-text for 3 s, then resumes it: a host that only slept.

    A host suspends a USB device only when nothing holds it busy; the guest's
    VT keyboard handler keeps usbhid's interrupt-IN polling going, so usbhid is
    unbound first (as in ``host_stops_polling``), then the device's runtime PM
    set to ``auto`` with no delay: the host suspends its port, dummy_hcd tells
    the gadget. ``power/control`` ``on`` resumes it, usbhid is bound again.
    """
    setup = ensure_gadget_up(context)
    text = typing_text(1200, seed=7)
    witness = InputCoreWitness()
    bus = BusWitness()
    recorder = start_recorder()
    watcher = StateWatcher(usb_device_dir())
    sleep: dict[str, Any] = {}
    try:
        process = voxkey_type(context, text, hidg_device(context), wait_s=120, verbose=True)
        assert process.stdin is not None
        process.stdin.write(text)
        process.stdin.close()
        wait_for(lambda: recorder.key_presses >= len(text) // 3 or process.poll() is not None, 600, 0.005)
        sleep = _suspend_and_resume(recorder, process, bus)
        run = _typing_outcome(process)
        recorder.wait_quiet()
    finally:
        recorder.stop()
        states = watcher.stop()
        input_core = witness.events()
        witness.close()
    return {
        "setup": setup,
        "text": text,
        "voxkey": run,
        "suspend": sleep,
        "states": states,
        "bus_reports": bus.reports(),
        "root_hub_port_requests": bus.port_requests() if not bus.error else [],
        "bus_witness": bus.error or "ok",
        "input_core_events": input_core,
        "input_core_witness": witness.error or "ok",
        "dmesg_tail": subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout[-3000:],
        **recorder.snapshot(),
    }


def _suspend_and_resume(recorder: KeyRecorder, process: subprocess.Popen[str], bus: BusWitness) -> dict[str, Any]:
    device = usb_device_dir()
    if device is None:
        return {"error": "the gadget is not enumerated"}
    interface = next(iter(sorted(device.glob(f"{device.name}:*.0")))).name
    usbhid = Path("/sys/bus/usb/drivers/usbhid")
    power = device / "power"
    sleep: dict[str, Any] = {
        "interface": interface,
        "presses_before": recorder.key_presses,
        "typing_still_running": process.poll() is None,
        "power_before": {name: _read(power, name) for name in ("control", "autosuspend_delay_ms", "runtime_status")},
    }
    (usbhid / "unbind").write_text(interface)
    sleep["keyboard_gone"] = wait_for(lambda: find_keyboard_event() is None, 10)
    (power / "autosuspend_delay_ms").write_text("0")
    (power / "control").write_text("auto")
    sleep["host_suspended"] = wait_for(lambda: _read(power, "runtime_status") == "suspended", 10, 0.01)
    sleep["suspended_at"] = time.time()
    presses, reports = recorder.key_presses, len(bus.reports())
    time.sleep(SUSPEND_S)
    sleep["udc_state_during"] = udc_state()
    sleep["udc_selfpowered_during"] = _read(UDC_STATE.parent, "is_selfpowered")
    sleep["runtime_status_during"] = _read(power, "runtime_status")
    sleep["presses_while_suspended"] = recorder.key_presses - presses
    sleep["bus_reports_while_suspended"] = len(bus.reports()) - reports
    sleep["typing_still_running_while_suspended"] = process.poll() is None
    (power / "control").write_text("on")
    sleep["resumed_at"] = time.time()
    sleep["udc_configured_again"] = wait_for(lambda: udc_state() == "configured", 10, 0.01)
    sleep["runtime_status_after"] = _read(power, "runtime_status")
    (power / "autosuspend_delay_ms").write_text(sleep["power_before"]["autosuspend_delay_ms"] or "2000")
    (usbhid / "bind").write_text(interface)
    sleep["keyboard_back"] = wait_for(lambda: find_keyboard_event() is not None, 30)
    return sleep
