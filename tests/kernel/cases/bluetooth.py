"""Bluetooth LE keyboard on a real kernel and a real BlueZ: btvirt's two virtual LE controllers.

Setup (what ``bluetooth_stack`` does): ``hci_vhci`` + ``btvirt -l2`` give the
guest two controllers on one virtual air, a system D-Bus and one
``bluetoothd`` manage both (bluetoothd always takes every controller, and it
owns the ``org.bluez`` name, so a second instance is impossible on one bus).
voxkey serves on hci0; hci1 plays the tablet through the same bluetoothd:
it discovers voxkey, pairs (with its own D-Bus agent, so voxkey's default
agent only answers for hci0), and BlueZ's HID-over-GATT plugin (``hog``) turns
voxkey into a uhid keyboard under /dev/input. These cases record what that
host sees; ``tests/transports/test_bluetooth_kernel.py`` judges it.

The guest emulates its CPU (no KVM): starting ``python -m voxkey`` there takes
about a minute, so every wait below is generous and keyed to a log line, never
to a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from dbus_fast import DBusError, Variant
from dbus_fast.annotations import DBusObjectPath, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from tests.kernel.cases import CaseResult, GuestContext, guest_case
from voxkey.transports.bluetooth import bluez

MODULES = ("bluetooth", "hci_vhci", "uhid", "hid_generic", "evdev")
VOXKEY_ADAPTER = "hci0"
HOST_ADAPTER = "hci1"
VOXKEY_NAME = "voxkey-test"
BOOT_WAIT_S = 240.0


def typing_text(length: int = 2200) -> str:
    """Every printable ASCII character, doubled letters, newlines and tabs (same generator as the USB case)."""
    from tests.kernel.cases.usb import typing_text as usb_typing_text

    return usb_typing_text(length, seed=5)


# --------------------------------------------------------------------------- processes


class Stack:
    """dbus-daemon, bluetoothd and btvirt for the whole guest session."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.bluetoothd: subprocess.Popen[bytes] | None = None
        self.btvirt: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self, bluetoothd_args: tuple[str, ...] = ()) -> dict[str, Any]:
        Path("/run/dbus").mkdir(parents=True, exist_ok=True)
        if not Path("/run/dbus/system_bus_socket").exists():
            subprocess.run(["dbus-daemon", "--system", "--fork", "--nopidfile"], check=True)
        found: list[str] = []
        for attempt in range(3):
            # Under CPU emulation a controller's HCI Reset can time out (2 s) while the other one
            # initialises; the kernel then never registers it. Start both again until both are up.
            self._start_btvirt()
            self.start_bluetoothd(bluetoothd_args)
            found = self.wait_adapters(timeout_s=120, fail=False)
            if {VOXKEY_ADAPTER, HOST_ADAPTER} <= set(found):
                return {"adapters": found, "attempts": attempt + 1}
            self.stop_bluetoothd()
            if self.btvirt is not None:
                self.btvirt.kill()
                self.btvirt.wait()
                self.btvirt = None
            time.sleep(2)
        raise RuntimeError(f"two powered controllers never came up (last: {found})")

    def _start_btvirt(self) -> None:
        for _attempt in range(3):
            self.btvirt = subprocess.Popen(["btvirt", "-l2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if _wait(lambda: len(list(Path("/sys/class/bluetooth").glob("hci*"))) >= 2, 30):
                time.sleep(2)
                return
            self.btvirt.kill()  # a controller's reset timed out under emulation: try again
            self.btvirt.wait()
            time.sleep(1)
        raise RuntimeError("btvirt -l2 did not bring up two controllers")

    def start_bluetoothd(self, args: tuple[str, ...] = ()) -> None:
        """bluetoothd with LE-only controllers.

        btvirt's controllers are dual-mode. After LE pairing BlueZ derives a
        BR/EDR key as well and starts a BR/EDR "reverse service discovery"
        towards the host; that page between the two virtual controllers fails
        (status 4) and bluetoothd 5.66 died right after it. voxkey is an LE
        keyboard, so the guest, like the Pi should, runs BlueZ in LE mode.
        """
        config = self.work / "main.conf"
        config.write_text("[General]\nControllerMode = le\n\n[Policy]\nAutoEnable = true\n")
        log = (self.work / f"bluetoothd-{self.restarts}.log").open("wb")
        # -E: Adapter1.ConnectDevice (connect by address without discovery) is experimental in 5.66
        command = ["/usr/libexec/bluetooth/bluetoothd", "-n", "-d", "-E", "-f", str(config), *args]
        self.bluetoothd = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.restarts += 1

    def stop_bluetoothd(self) -> None:
        if self.bluetoothd is not None:
            self.bluetoothd.send_signal(signal.SIGTERM)
            self.bluetoothd.wait(timeout=30)
            self.bluetoothd = None

    def wait_adapters(self, timeout_s: float = BOOT_WAIT_S, fail: bool = True) -> list[str]:
        def powered() -> list[str]:
            objects = run_async(managed_objects())
            return sorted(
                path.rsplit("/", 1)[-1]
                for path, ifs in objects.items()
                if "org.bluez.Adapter1" in ifs and ifs["org.bluez.Adapter1"].get("Powered")
            )

        deadline = time.monotonic() + timeout_s
        found: list[str] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                found = powered()
                if {VOXKEY_ADAPTER, HOST_ADAPTER} <= set(found):
                    return found
            time.sleep(1)
        if fail:
            raise RuntimeError(f"adapters not powered in time: {found}")
        return found


class Voxkey:
    """``python -m voxkey bt-type`` on hci0, text on stdin, log and statistics in the work dir."""

    def __init__(self, context: GuestContext, label: str, text: str, *args: str) -> None:
        self.stats = context.work_dir / f"voxkey-{label}.json"
        self.log_path = context.work_dir / f"voxkey-{label}.log"
        self.log = self.log_path.open("wb")
        command = [
            context.python,
            "-m",
            "voxkey",
            "-v",
            "bt-type",
            "-",
            "--adapter",
            VOXKEY_ADAPTER,
            "--name",
            VOXKEY_NAME,
            "--wait",
            "600",
            "--stats",
            str(self.stats),
            *args,
        ]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=context.voxkey_env()
        )
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout_s: float = BOOT_WAIT_S) -> bool:
        return (
            _wait(lambda: re.search(pattern, self.log_text()) is not None or self.process.poll() is not None, timeout_s)
            and re.search(pattern, self.log_text()) is not None
        )

    def finish(self, timeout_s: float = 600.0) -> dict[str, Any]:
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        stats = json.loads(self.stats.read_text()) if self.stats.exists() else None
        return {
            "rc": self.process.returncode,
            "stdout": stdout.decode(errors="replace"),
            "log_tail": self.log_text()[-3000:],
            "stats": stats,
        }


# --------------------------------------------------------------------------- the host side (hci1)


class HostAgent(ServiceInterface):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(bluez.AGENT)
        self.calls: list[str] = []

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> bluez.DBusNone:
        self.calls.append("RequestConfirmation")

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> bluez.DBusNone:
        self.calls.append("RequestAuthorization")

    @dbus_method()
    def Cancel(self) -> bluez.DBusNone:
        self.calls.append("Cancel")

    @dbus_method()
    def Release(self) -> bluez.DBusNone:
        return None


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def managed_objects() -> dict[str, dict[str, dict[str, Any]]]:
    bus = await bluez.connect_system_bus()
    try:
        return await bluez.managed_objects(bus)
    finally:
        bus.disconnect()


def voxkey_address() -> str:
    objects = run_async(managed_objects())
    return str(objects[f"/org/bluez/{VOXKEY_ADAPTER}"]["org.bluez.Adapter1"]["Address"])


def host_device_path(address: str) -> str:
    return f"/org/bluez/{HOST_ADAPTER}/dev_{address.replace(':', '_')}"


async def host_pair(address: str, discover_s: float = 120.0) -> dict[str, Any]:
    """Discover voxkey from hci1 and pair with it, answering as a tablet's own agent would."""
    result: dict[str, Any] = {}
    bus = await bluez.connect_system_bus()
    agent = HostAgent()
    bus.export("/test/host_agent", agent)
    adapter = f"/org/bluez/{HOST_ADAPTER}"
    device = host_device_path(address)
    try:
        await bluez.call(
            bus, "/org/bluez", bluez.AGENT_MANAGER, "RegisterAgent", "os", ["/test/host_agent", "NoInputNoOutput"]
        )
        await bluez.call(
            bus, adapter, bluez.ADAPTER, "SetDiscoveryFilter", "a{sv}", [{"Transport": Variant("s", "le")}]
        )
        await bluez.call(bus, adapter, bluez.ADAPTER, "StartDiscovery")
        started = time.monotonic()
        while time.monotonic() - started < discover_s:
            objects = await bluez.managed_objects(bus)
            if device in objects:
                props = objects[device][bluez.DEVICE]
                result["discovered"] = {k: props.get(k) for k in ("Name", "Appearance", "UUIDs", "AddressType")}
                result["discovered_after_s"] = round(time.monotonic() - started, 2)
                break
            await asyncio.sleep(0.5)
        else:
            result["discovered"] = None
        if result["discovered"] is not None:
            try:
                await bluez.call(bus, device, bluez.DEVICE, "Pair")
                result["paired"] = True
            except DBusError as exc:
                result["paired"] = False
                result["pair_error"] = f"{exc.type}: {exc.text}"
        with contextlib.suppress(DBusError):
            await bluez.call(bus, adapter, bluez.ADAPTER, "StopDiscovery")
        if result.get("paired"):
            await bluez.set_property(bus, device, bluez.DEVICE, "Trusted", Variant("b", True))
            with contextlib.suppress(DBusError):
                await bluez.call(bus, device, bluez.DEVICE, "Connect")
        result["agent_calls"] = agent.calls
    finally:
        with contextlib.suppress(Exception):
            await bluez.call(bus, "/org/bluez", bluez.AGENT_MANAGER, "UnregisterAgent", "o", ["/test/host_agent"])
        bus.disconnect()
    return result


async def host_device_call(address: str, member: str) -> str | None:
    bus = await bluez.connect_system_bus()
    try:
        await bluez.call(bus, host_device_path(address), bluez.DEVICE, member)
        return None
    except DBusError as exc:
        return f"{exc.type}: {exc.text}"
    finally:
        bus.disconnect()


def host_device_props(address: str) -> dict[str, Any]:
    objects = run_async(managed_objects())
    props = objects.get(host_device_path(address), {}).get("org.bluez.Device1", {})
    return {k: props.get(k) for k in ("Connected", "Paired", "Trusted", "ServicesResolved", "Bonded")}


# --------------------------------------------------------------------------- the host's input device


def find_input_event(name: str = VOXKEY_NAME) -> str | None:
    for block in Path("/proc/bus/input/devices").read_text().split("\n\n"):
        # hid-generic names each application collection: "<name> Keyboard", "<name> Consumer Control"
        if f'N: Name="{name} Keyboard"' not in block:
            continue
        match = re.search(r"^H: Handlers=.*\b(event\d+)\b", block, re.MULTILINE)
        if match and "kbd" in block:
            return f"/dev/input/{match.group(1)}"
    return None


class InputRecorder(threading.Thread):
    """Reads every EV_KEY event of the uhid keyboard hog made for voxkey, across reconnections."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.events: list[list[float]] = []
        self.devices: list[str] = []
        self.presses = 0
        self.last_event_at = time.monotonic()
        self._stop_requested = threading.Event()

    def run(self) -> None:
        import evdev
        from evdev import ecodes

        while not self._stop_requested.is_set():
            path = find_input_event()
            if path is None:
                time.sleep(0.01)
                continue
            try:
                device = evdev.InputDevice(path)
            except OSError:
                time.sleep(0.01)
                continue
            self.devices.append(f"{path} {device.name} opened at {time.time():.3f}")
            try:
                while not self._stop_requested.is_set():
                    ready, _, _ = select.select([device.fd], [], [], 0.05)
                    if not ready:
                        continue
                    for event in device.read():
                        if event.type != ecodes.EV_KEY:
                            continue
                        self.events.append([event.timestamp(), event.type, event.code, event.value])
                        self.last_event_at = time.monotonic()
                        if event.value == 1 and event.code not in (ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT):
                            self.presses += 1
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    device.close()

    def stop(self) -> None:
        self._stop_requested.set()
        self.join(timeout=5)


def _wait(predicate: Any, timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


# --------------------------------------------------------------------------- cases

_STACK: Stack | None = None
_STATE: dict[str, Any] = {}


def stack(context: GuestContext) -> Stack:
    global _STACK
    if _STACK is None:
        _STACK = Stack(context.work_dir)
        _STATE["stack"] = _STACK.start()
    return _STACK


def type_and_record(
    context: GuestContext, label: str, text: str, *args: str, pair: bool = False, drop_after_presses: int | None = None
) -> CaseResult:
    """Run voxkey with ``text``; the host pairs if asked, records everything, optionally drops the link."""
    stack(context)
    address = voxkey_address()
    recorder = InputRecorder()
    recorder.start()
    voxkey = Voxkey(context, label, text, *(("--pair",) if pair else ()), *args)
    observations: dict[str, Any] = {"text": text, "voxkey_address": address}
    ready = voxkey.wait_log(r"bluetooth: (pairing|waiting-for-host|connected)")
    observations["voxkey_ready"] = ready
    started = time.monotonic()
    if pair and ready:
        observations["pairing"] = run_async(host_pair(address))
    elif ready:
        # A bonded host reconnects on its own (bluetoothd's auto-connect for HID); give it the chance first.
        observations["auto_reconnected"] = _wait(lambda: bool(host_device_props(address).get("Connected")), 90)
        if not observations["auto_reconnected"]:
            observations["connect_error"] = run_async(host_device_call(address, "Connect"))
    observations["input_device_appeared"] = _wait(lambda: find_input_event() is not None, 120)
    if drop_after_presses is not None:
        _wait(lambda: recorder.presses >= drop_after_presses or voxkey.process.poll() is not None, 600)
        observations["dropped_at_presses"] = recorder.presses
        observations["disconnect_error"] = run_async(host_device_call(address, "Disconnect"))
        time.sleep(3)
        observations["presses_while_down"] = recorder.presses
        observations["reconnect_error"] = run_async(host_device_call(address, "Connect"))
    observations["voxkey"] = voxkey.finish()
    typing_s = time.monotonic() - started
    _wait(lambda: time.monotonic() - recorder.last_event_at > 3, 30)
    recorder.stop()
    observations.update(
        events=recorder.events,
        devices=recorder.devices,
        typing_wall_s=round(typing_s, 2),
        host_device=host_device_props(address),
    )
    return observations


@guest_case("bluetooth.pair_and_type", modules=MODULES, timeout_s=1500)
def pair_and_type(context: GuestContext) -> CaseResult:
    return type_and_record(context, "pair", typing_text(), pair=True)


@guest_case("bluetooth.drop_mid_text", modules=MODULES, timeout_s=1500)
def drop_mid_text(context: GuestContext) -> CaseResult:
    return type_and_record(context, "drop", typing_text(900), drop_after_presses=300)


@guest_case("bluetooth.reconnect_after_restart", modules=MODULES, timeout_s=1500)
def reconnect_after_restart(context: GuestContext) -> CaseResult:
    the_stack = stack(context)
    the_stack.stop_bluetoothd()
    the_stack.start_bluetoothd()
    the_stack.wait_adapters()
    return type_and_record(context, "restart", "Reconnected after restart: no pairing needed!\n")


@guest_case("bluetooth.stranger_refused", modules=MODULES, timeout_s=1500)
def stranger_refused(context: GuestContext) -> CaseResult:
    """Forget the bond on both sides, then the former host tries to read, subscribe and pair outside pairing mode."""
    stack(context)
    address = voxkey_address()
    host_address = str(run_async(managed_objects())[f"/org/bluez/{HOST_ADAPTER}"]["org.bluez.Adapter1"]["Address"])
    observations: dict[str, Any] = {}
    forget = subprocess.run(
        [context.python, "-m", "voxkey", "hosts", "forget", host_address, "--adapter", VOXKEY_ADAPTER],
        capture_output=True,
        text=True,
        env=context.voxkey_env(),
        check=False,
    )
    observations["voxkey_forget"] = {"rc": forget.returncode, "stderr": forget.stderr}
    observations["host_remove"] = run_async(_remove_device(HOST_ADAPTER, address))
    voxkey = Voxkey(context, "stranger", "this must never arrive\n")
    observations["voxkey_ready"] = voxkey.wait_log(r"bluetooth: waiting-for-host")
    observations["attempts"] = run_async(_stranger_attempts(address))
    voxkey.process.send_signal(signal.SIGTERM)
    observations["voxkey"] = voxkey.finish(60)
    observations["input_device"] = find_input_event()
    return observations


async def _remove_device(adapter_name: str, address: str) -> str | None:
    bus = await bluez.connect_system_bus()
    try:
        await bluez.call(
            bus,
            f"/org/bluez/{adapter_name}",
            bluez.ADAPTER,
            "RemoveDevice",
            "o",
            [f"/org/bluez/{adapter_name}/dev_{address.replace(':', '_')}"],
        )
        return None
    except DBusError as exc:
        return f"{exc.type}: {exc.text}"
    finally:
        bus.disconnect()


async def _stranger_attempts(address: str) -> dict[str, Any]:
    """Discovery (voxkey is not discoverable now), then a direct connection: read, subscribe, pair."""
    out: dict[str, Any] = {}
    bus = await bluez.connect_system_bus()
    adapter = f"/org/bluez/{HOST_ADAPTER}"
    device = host_device_path(address)
    try:
        await bluez.call(
            bus, adapter, bluez.ADAPTER, "SetDiscoveryFilter", "a{sv}", [{"Transport": Variant("s", "le")}]
        )
        await bluez.call(bus, adapter, bluez.ADAPTER, "StartDiscovery")
        await asyncio.sleep(20)
        objects = await bluez.managed_objects(bus)
        out["listed_by_discovery"] = device in objects
        with contextlib.suppress(DBusError):
            await bluez.call(bus, adapter, bluez.ADAPTER, "StopDiscovery")
        try:
            await bluez.call(
                bus,
                adapter,
                bluez.ADAPTER,
                "ConnectDevice",
                "a{sv}",
                [{"Address": Variant("s", address), "AddressType": Variant("s", "public")}],
            )
            out["connect"] = "ok"
        except DBusError as exc:
            out["connect"] = f"{exc.type}: {exc.text}"
        await asyncio.sleep(5)
        objects = await bluez.managed_objects(bus)
        reports = [
            path
            for path, ifs in objects.items()
            if path.startswith(device + "/") and ifs.get(bluez.GATT_CHARACTERISTIC, {}).get("UUID") == bluez.REPORT
        ]
        out["report_characteristics_visible"] = len(reports)
        for path in reports[:1]:
            try:
                await bluez.call(bus, path, bluez.GATT_CHARACTERISTIC, "ReadValue", "a{sv}", [{}])
                out["read"] = "allowed"
            except DBusError as exc:
                out["read"] = f"{exc.type}: {exc.text}"
            try:
                await bluez.call(bus, path, bluez.GATT_CHARACTERISTIC, "StartNotify")
                out["subscribe"] = "allowed"
            except DBusError as exc:
                out["subscribe"] = f"{exc.type}: {exc.text}"
        try:
            await bluez.call(bus, device, bluez.DEVICE, "Pair")
            out["pair"] = "paired"
        except DBusError as exc:
            out["pair"] = f"{exc.type}: {exc.text}"
        out["device_after"] = {k: objects.get(device, {}).get(bluez.DEVICE, {}).get(k) for k in ("Connected", "Paired")}
    finally:
        bus.disconnect()
    return out


def main() -> None:
    """Debugging aid inside a guest: ``python -m tests.kernel.cases.bluetooth CASE WORKDIR``."""
    import sys

    context = GuestContext(repo=Path(__file__).resolve().parents[3], work_dir=Path(sys.argv[2]), python=sys.executable)
    functions = {
        "pair": pair_and_type,
        "drop": drop_mid_text,
        "restart": reconnect_after_restart,
        "stranger": stranger_refused,
    }
    for name in sys.argv[1].split(","):
        result = functions[name](context)
        events = result.pop("events", [])
        result["event_count"] = len(events)
        (Path(sys.argv[2]) / f"case-{name}.json").write_text(json.dumps({**result, "events": events}))
        print(name, json.dumps({k: v for k, v in result.items() if k != "text"}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
