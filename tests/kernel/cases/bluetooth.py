"""Bluetooth LE keyboard on a real kernel and a real BlueZ: btvirt's two virtual LE controllers.

Setup (what ``Stack`` does): ``hci_vhci`` + ``btvirt -l2`` give the guest two
controllers on one virtual air, a system D-Bus and one ``bluetoothd`` manage
both (bluetoothd always takes every controller, and it owns the ``org.bluez``
name, so a second instance is impossible on one bus). voxkey serves on hci0;
hci1 plays the tablet through the same bluetoothd: it discovers voxkey, pairs
(with its own D-Bus agent, so voxkey's default agent only answers for hci0),
and BlueZ's HID-over-GATT plugin (``hog``) turns voxkey into a uhid keyboard
under /dev/input. These cases record what that host sees;
``tests/kernel/test_bluetooth.py`` judges it.

Which bluetoothd: BlueZ's own server sends every notification as an ATT
*Multiple* Handle Value Notification (opcode 0x23) to a client that declared
support for it, and BlueZ's client always declares it; but the hog plugin of
BlueZ 5.55-5.66 (Debian bookworm has 5.66) only listens for the single-value
opcode 0x1B and drops the rest (bluez issue #71, fixed in 5.67). So with
bookworm's bluetoothd in both roles no HID-over-GATT keyboard served by BlueZ
ever types on the host. The hog cases therefore run the bluetoothd that
``hardware/bluetooth.md`` builds from Debian's newer BlueZ source (found at
``TEST_BLUETOOTHD`` or ``$VOXKEY_BLUETOOTHD``); the bleak case and the stranger
case run bookworm's own 5.66, the version a Raspberry Pi OS bookworm ships, so
voxkey is exercised on both. The old-host case runs 5.66 with hog on: a host
on Debian 12, which voxkey must recognise and refuse loudly (``hostcompat``).

The guest emulates its CPU (no KVM), so every wait below is generous and keyed
to a log line or a state, never to a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dbus_fast import DBusError, Variant
from dbus_fast.annotations import DBusObjectPath, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from tests.kernel.cases import CaseResult, GuestContext, KeyRecorder, guest_case, start_recorder, wait_for
from voxkey.transports.bluetooth import bluez

MODULES = ("bluetooth", "hci_vhci", "uhid", "hid_generic", "evdev")
VOXKEY_ADAPTER = "hci0"
HOST_ADAPTER = "hci1"
VOXKEY_NAME = "voxkey-test"
BOOT_WAIT_S = 240.0
SYSTEM_BLUETOOTHD = "/usr/libexec/bluetooth/bluetoothd"
CENTRAL_PLUGINS_OFF = ("-P", "hog,vcp,micp,bap,bass,mcp,csip,ccp")
"""bluetoothd options for the bleak and stranger cases: hog off, so the HID service is on D-Bus;
the LE audio plugins off, which 5.66 crashed in (VCP) while a central connected to voxkey."""
TEST_BLUETOOTHD = "/opt/voxkey-bluez/install/libexec/bluetooth/bluetoothd"
SINGLE_NOTIFICATIONS_BLUETOOTHD = "/opt/voxkey-bluez/single-notifications/bluetoothd"
"""This machine's BlueZ (bookworm's 5.66) with ``hardware/bluez/single-notifications.patch``: what
``install.sh --bluetoothd-for-old-hosts`` builds on a Pi (``tests/kernel/build-bluetoothd.sh``)."""
SYSTEMD_UNITS = Path("/etc/systemd/system")
APP_CENTRAL_DEVICE_ID = "bluetooth:004C:0001:0001"
"""The Device ID bluetoothd reports for the bleak and stranger cases: a tablet's stack, not BlueZ's.

The central there is bleak, an app on the GATT client that hears both
notification opcodes; but voxkey refuses every host whose Device ID says
BlueZ 5.55-5.66 (their keyboard driver, hog, does not), and bluetoothd would
report its own 5.66. An app on a tablet is what the bleak case stands for."""
BDADDR_LE_PUBLIC = "1"  # btmgmt takes the mgmt address type as a number


def typing_text(length: int = 2200) -> str:
    """Every printable ASCII character, doubled letters, newlines and tabs (same generator as the USB case)."""
    from tests.kernel.cases.usb import typing_text as usb_typing_text

    return usb_typing_text(length, seed=5)


BLEAK_TEXT = "bleak: " + "".join(chr(code) for code in range(0x20, 0x7F)) + "\n"


def hog_bluetoothd() -> str:
    """The bluetoothd whose hog plugin hears BlueZ's notifications (see the module docstring)."""
    for candidate in (os.environ.get("VOXKEY_BLUETOOTHD"), TEST_BLUETOOTHD):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return SYSTEM_BLUETOOTHD


def bluetoothd_version(binary: str) -> str:
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or result.stderr.strip()


# --------------------------------------------------------------------------- processes


class Stack:
    """dbus-daemon, bluetoothd and btvirt for the whole guest session."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.bluetoothd: subprocess.Popen[bytes] | None = None
        self.btvirt: subprocess.Popen[bytes] | None = None
        self.runs: list[dict[str, Any]] = []
        self.interval_request: dict[str, Any] = {}

    @property
    def current(self) -> dict[str, Any]:
        return self.runs[-1] if self.runs else {}

    def start(self, binary: str, bluetoothd_args: tuple[str, ...] = ()) -> dict[str, Any]:
        Path("/run/dbus").mkdir(parents=True, exist_ok=True)
        if not Path("/run/dbus/system_bus_socket").exists():
            subprocess.run(["dbus-daemon", "--system", "--fork", "--nopidfile"], check=True)
        found: list[str] = []
        for attempt in range(3):
            # Under CPU emulation a controller's HCI Reset can time out (2 s) while the other one
            # initialises; the kernel then never registers it. Start both again until both are up.
            self._start_btvirt()
            self.start_bluetoothd(binary, bluetoothd_args)
            found = self.wait_adapters(timeout_s=120, fail=False)
            if {VOXKEY_ADAPTER, HOST_ADAPTER} <= set(found):
                self.interval_request = request_short_interval()
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
            if wait_for(lambda: len(list(Path("/sys/class/bluetooth").glob("hci*"))) >= 2, 30, 0.2):
                time.sleep(2)
                return
            self.btvirt.kill()  # a controller's reset timed out under emulation: try again
            self.btvirt.wait()
            time.sleep(1)
        raise RuntimeError("btvirt -l2 did not bring up two controllers")

    def start_bluetoothd(
        self, binary: str, args: tuple[str, ...] = (), device_id: str | None = None, repairing: str | None = None
    ) -> None:
        """bluetoothd with LE-only controllers (``repairing``: its ``JustWorksRepairing``, default its own).

        btvirt's controllers are dual-mode. After LE pairing BlueZ derives a
        BR/EDR key as well and starts a BR/EDR "reverse service discovery"
        towards the host; that page between the two virtual controllers fails
        (status 4) and bluetoothd 5.66 died right after it. voxkey is an LE
        keyboard, so the guest, like the Pi should, runs BlueZ in LE mode.
        """
        config = self.work / "main.conf"
        general = (
            "[General]\nControllerMode = le\n"
            + (f"DeviceID = {device_id}\n" if device_id else "")
            + (f"JustWorksRepairing = {repairing}\n" if repairing else "")
        )
        # One ATT bearer, as install.sh sets on the Pi: with Enhanced ATT's channels a notification can
        # overtake the one before it (a release overtaken by the next press: a doubled letter lost). Not
        # for the app-central cases (bleak, stranger): there bookworm's 5.66 also plays the central, and
        # without EATT it crashed in 2 of 4 CI runs (att_disconnected after a failed MTU exchange).
        gatt = "" if args == CENTRAL_PLUGINS_OFF else "\n[GATT]\nChannels = 1\n"
        config.write_text(general + gatt + "\n[Policy]\nAutoEnable = true\n")
        log = (self.work / f"bluetoothd-{len(self.runs)}.log").open("wb")
        # -E: Adapter1.ConnectDevice (connect by address without discovery) is experimental
        command = [binary, "-n", "-d", "-E", "-f", str(config), *args]
        self.bluetoothd = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.runs.append(
            {
                "binary": binary,
                "version": bluetoothd_version(binary),
                "args": list(args),
                "device_id": device_id,
                "repairing": repairing,
            }
        )

    def stop_bluetoothd(self) -> None:
        if self.bluetoothd is not None:
            self.bluetoothd.send_signal(signal.SIGTERM)
            self.bluetoothd.wait(timeout=30)
            self.bluetoothd = None

    def restart_bluetoothd(
        self, binary: str, args: tuple[str, ...] = (), device_id: str | None = None, repairing: str | None = None
    ) -> None:
        self.stop_bluetoothd()
        if binary != self.current.get("binary"):
            # Another BlueZ version: its attribute caches of the remote side describe the other
            # version's own services (5.66 crashed in its VCP plugin reading 5.82's cache).
            for cache in Path("/var/lib/bluetooth").glob("*/cache/*"):
                cache.unlink()
        self.start_bluetoothd(binary, args, device_id, repairing)
        self.wait_adapters()

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


SHORT_INTERVAL = (6, 12)
"""7.5-15 ms in units of 1.25 ms: what keyboards ask for, and what ``hardware/bluetooth.md`` sets on the Pi."""


def request_short_interval(adapter: str = VOXKEY_ADAPTER) -> dict[str, Any]:
    """Make voxkey's controller ask its hosts for a 7.5-15 ms connection interval, as the Pi does.

    On the Pi that is ``[LE] MinConnectionInterval=6`` / ``MaxConnectionInterval=12``
    in main.conf; bluetoothd hands them to the kernel, and the kernel, as the
    peripheral, sends an L2CAP Connection Parameter Update Request whenever a
    host connects outside that range. Here one bluetoothd serves both sides
    and main.conf would set the host's own intervals too, so the guest sets
    only hci0's defaults, through debugfs.
    """
    debugfs = Path("/sys/kernel/debug")
    if not (debugfs / "bluetooth").is_dir():
        subprocess.run(["mount", "-t", "debugfs", "none", str(debugfs)], check=False)
    base = debugfs / "bluetooth" / adapter
    result: dict[str, Any] = {}
    for name, value in (("conn_min_interval", SHORT_INTERVAL[0]), ("conn_max_interval", SHORT_INTERVAL[1])):
        try:
            (base / name).write_text(str(value))
            result[name] = int((base / name).read_text().strip())
        except OSError as exc:
            result[name] = f"{type(exc).__name__}: {exc}"
    return result


class Voxkey:
    """``voxkey type - --transport bluetooth`` on hci0: text on stdin, log and statistics in the work dir."""

    def __init__(self, context: GuestContext, label: str, text: str, *args: str) -> None:
        self.stats = context.work_dir / f"voxkey-{label}.json"
        self.stats.unlink(missing_ok=True)
        self.log_path = context.work_dir / f"voxkey-{label}.log"
        self.log = self.log_path.open("w")
        command = context.voxkey_command(
            "--debug",
            "type",
            "-",
            "--transport",
            "bluetooth",
            "--layout",
            "us",
            "--adapter",
            VOXKEY_ADAPTER,
            "--name",
            VOXKEY_NAME,
            "--pairing",
            "just_works",  # the host agents here have no display; the passkey case pairs through the daemon
            "--wait",
            "240",  # without progress (the Keyboard's bound): pairing in the emulated guest takes 60-120 s
            "--stats",
            str(self.stats),
            *args,
        )
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=context.voxkey_env(),
        )
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.close()
        self.process.stdin = None  # so communicate() does not flush a closed pipe

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout_s: float = BOOT_WAIT_S) -> bool:
        def seen() -> bool:
            return re.search(pattern, self.log_text()) is not None

        wait_for(lambda: seen() or self.process.poll() is not None, timeout_s, 0.2)
        return seen()

    def finish(self, timeout_s: float = 900.0) -> dict[str, Any]:
        try:
            stdout, _ = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            stdout, _ = self.process.communicate(timeout=60)
        self.log.close()
        stats = json.loads(self.stats.read_text()) if self.stats.exists() else None
        return {"rc": self.process.returncode, "stdout": stdout, "log_tail": self.log_text()[-3000:], "stats": stats}


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


def adapter_address(adapter: str) -> str:
    objects = run_async(managed_objects())
    return str(objects[f"/org/bluez/{adapter}"]["org.bluez.Adapter1"]["Address"])


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


def find_input_event(name: str = VOXKEY_NAME) -> str | None:
    """The evdev node of the keyboard hog made for voxkey (hid-generic names it "<name> Keyboard")."""
    for block in Path("/proc/bus/input/devices").read_text().split("\n\n"):
        if f'N: Name="{name} Keyboard"' not in block:
            continue
        match = re.search(r"^H: Handlers=.*\b(event\d+)\b", block, re.MULTILINE)
        if match and "kbd" in block:
            return f"/dev/input/{match.group(1)}"
    return None


# --------------------------------------------------------------------------- cases

_STACK: Stack | None = None


def stack(context: GuestContext) -> Stack:
    """The guest's Bluetooth stack, started on first use with the hog-capable bluetoothd."""
    global _STACK
    if _STACK is None:
        _STACK = Stack(context.work_dir)
        _STACK.start(hog_bluetoothd())
    return _STACK


def use_bluetoothd(
    context: GuestContext,
    binary: str,
    args: tuple[str, ...] = (),
    device_id: str | None = None,
    repairing: str | None = None,
) -> Stack:
    """Make ``binary`` with ``args`` (and ``DeviceID``, ``JustWorksRepairing``) the running bluetoothd.

    Restarted only if it differs, or if it died: a bluetoothd that crashed in one case (5.66 as bleak's
    central did once) must not take the cases after it down too.
    """
    the_stack = stack(context)
    current = the_stack.current
    wanted = (binary, args, device_id, repairing)
    running = the_stack.bluetoothd is not None and the_stack.bluetoothd.poll() is None
    if (
        not running
        or (
            current.get("binary"),
            tuple(current.get("args", ())),
            current.get("device_id"),
            current.get("repairing"),
        )
        != wanted
    ):
        the_stack.restart_bluetoothd(binary, args, device_id, repairing)
    return the_stack


def type_and_record(
    context: GuestContext,
    label: str,
    text: str,
    pair: bool = False,
    drop_after_presses: int | None = None,
    eject: bool = False,
    bluetoothd: str | None = None,
    power_cycle: bool = False,
    repairing: str | None = None,
    restart_stack: bool = False,
) -> CaseResult:
    """Run voxkey with ``text``; the host pairs if asked, records everything, optionally drops the link.

    With ``eject`` voxkey presses the media key Eject after the text (hid-input
    reports it on the keyboard's own input device, where the recorder sees it).
    ``bluetoothd`` is the binary serving both sides (default: the hog-capable one).
    With ``power_cycle`` the drop after ``drop_after_presses`` is voxkey's adapter powered off and on
    (BlueZ's ``Powered``, as ``bluetoothctl power off`` or a desktop's switch) instead of its radio cut;
    with ``restart_stack`` it is bluetoothd restarting (``_restart_bluetoothd_mid_text``).
    """
    the_stack = use_bluetoothd(context, bluetoothd or hog_bluetoothd(), repairing=repairing)
    address = adapter_address(VOXKEY_ADAPTER)
    pair = pair or not host_device_props(address).get("Paired")  # a case run on its own bonds first
    # voxkey waits 2 s (host_settle_s) after the host subscribes, before its keyboard even exists
    recorder = start_recorder(find_input_event, open_timeout_s=None, poll_s=0.02)
    voxkey = Voxkey(context, label, text, *(("--pair",) if pair else ()), *(("--eject",) if eject else ()))
    observations: dict[str, Any] = {
        "text": text,
        "voxkey_address": address,
        "bluetoothd": the_stack.current,
        "interval_request": the_stack.interval_request,
    }
    ready = voxkey.wait_log(r"bluetooth: (pairing|waiting-for-host|connected)")
    observations["voxkey_ready"] = ready
    started = time.monotonic()
    if pair and ready:
        observations["pairing"] = run_async(host_pair(address))
    elif ready:
        # A bonded HID host reconnects on its own (BlueZ's hog auto-connects when voxkey advertises).
        observations["auto_reconnected"] = wait_for(lambda: bool(host_device_props(address).get("Connected")), 45, 0.5)
        if not observations["auto_reconnected"]:
            observations["connect_error"] = run_async(host_device_call(address, "Connect"))
    observations["input_device_appeared"] = wait_for(lambda: find_input_event() is not None, 120, 0.2)
    sampler = ProcessSampler(context.work_dir / f"ps-{label}.txt")
    sampler.start()
    if drop_after_presses is not None and restart_stack:
        _restart_bluetoothd_mid_text(observations, recorder, voxkey, address, drop_after_presses, the_stack)
    elif drop_after_presses is not None and power_cycle:
        _power_cycle(observations, recorder, voxkey, address, drop_after_presses)
    elif drop_after_presses is not None:
        _drop_and_restore(observations, recorder, voxkey, address, drop_after_presses)
    observations["voxkey"] = voxkey.finish()
    if restart_stack:
        # once at start, once with the bluetoothd that came back
        observations["registered_again"] = voxkey.log_text().count(f"keyboard '{VOXKEY_NAME}' registered on") >= 2
    sampler.stop()
    observations["typing_wall_s"] = round(time.monotonic() - started, 2)
    recorder.wait_quiet(3.0, 30)
    recorder.stop()
    observations.update(recorder.snapshot(), host_device=host_device_props(address))
    observations["host_modalias_seen_by_voxkey"] = voxkey_side_props(address).get("Modalias")
    return observations


def voxkey_side_props(host_side_address: str) -> dict[str, Any]:
    """hci0's Device1 for the host (hci1): what voxkey's BlueZ knows about the host, its Modalias included."""
    host_address = adapter_address(HOST_ADAPTER)
    path = f"/org/bluez/{VOXKEY_ADAPTER}/dev_{host_address.replace(':', '_')}"
    props = run_async(managed_objects()).get(path, {}).get(bluez.DEVICE, {})
    return {k: props.get(k) for k in ("Connected", "Paired", "Modalias")}


def _wait_for_presses(observations: dict[str, Any], recorder: KeyRecorder, voxkey: Voxkey, presses: int) -> None:
    """Until the host has had ``presses`` key presses (or voxkey ended): where a mid-text fault goes in."""
    wait_for(lambda: recorder.key_presses >= presses or voxkey.process.poll() is not None, 600, 0.01)
    observations["typing_still_running_at_drop"] = voxkey.process.poll() is None


def _wait_for_reconnect(observations: dict[str, Any], address: str, timeout_s: float) -> None:
    """The bonded host comes back by itself after a fault; if it does not, one ``Connect`` from it says why."""
    observations["auto_reconnected"] = wait_for(
        lambda: bool(host_device_props(address).get("Connected")), timeout_s, 0.5
    )
    if not observations["auto_reconnected"]:
        observations["reconnect_error"] = run_async(host_device_call(address, "Connect"))


def _drop_and_restore(
    observations: dict[str, Any], recorder: KeyRecorder, voxkey: Voxkey, address: str, after_presses: int
) -> None:
    """The link dies mid-text, as when voxkey's radio cuts out, and comes back by itself.

    voxkey's controller goes down at once (rfkill soft block on hci0): the
    report waiting in it and those queued in its kernel never go out, and the
    kernel ends the link without a word from the controller. The host hears
    nothing more; once it has handled what it got (no key for 1.5 s, what a
    supervision timeout gives a real host), its controller declares the link
    lost (mgmt Disconnect on hci1). Then the radio comes back, the bonded host
    reconnects on its own, and voxkey must send exactly what never arrived.

    Why not just disconnect at the host: btvirt hands the host the last
    packets and the disconnection together, and bluetoothd handles its mgmt
    socket (Device Disconnected: hog unregisters its report handlers and
    destroys the uhid device) before the ATT PDUs still queued on the link's
    socket. Those reports were acknowledged by the host's controller and then
    thrown away by the host's own stack, which no keyboard can see (CI lost 8
    reports that way, " -- "). A real host only loses the link after a
    supervision timeout of silence, by which time it has long read them.
    """
    _wait_for_presses(observations, recorder, voxkey, after_presses)
    observations["dropped_at_presses"] = recorder.key_presses
    radio = rfkill_soft_switch(VOXKEY_ADAPTER)
    radio.write_text("1")
    recorder.wait_quiet(1.5, 60)
    drop = subprocess.run(
        ["btmgmt", "--index", HOST_ADAPTER.removeprefix("hci"), "disconnect", "-t", BDADDR_LE_PUBLIC, address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    observations["disconnect"] = {"rc": drop.returncode, "output": (drop.stdout + drop.stderr)[-500:]}
    observations["disconnected"] = wait_for(lambda: not host_device_props(address).get("Connected"), 30, 0.2)
    observations["presses_while_down"] = recorder.key_presses - observations["dropped_at_presses"]
    radio.write_text("0")
    _wait_for_reconnect(observations, address, 60)


def _power_cycle(
    observations: dict[str, Any], recorder: KeyRecorder, voxkey: Voxkey, address: str, after_presses: int
) -> None:
    """voxkey's adapter is powered off mid-text and on again: the link ends cleanly, and voxkey must resume.

    Powering off through BlueZ disconnects every host first (the host hears a
    proper disconnection, unlike the radio cut of ``_drop_and_restore``), and
    the kernel forgets the advertisement. voxkey has to notice ``Powered`` come
    back, advertise again and send exactly what the host never got.
    """
    _wait_for_presses(observations, recorder, voxkey, after_presses)
    observations["dropped_at_presses"] = recorder.key_presses
    observations["power_off"] = _set_powered(VOXKEY_ADAPTER, False)
    observations["disconnected"] = wait_for(lambda: not host_device_props(address).get("Connected"), 30, 0.2)
    recorder.wait_quiet(1.5, 60)
    observations["presses_while_down"] = recorder.key_presses - observations["dropped_at_presses"]
    observations["power_on"] = _set_powered(VOXKEY_ADAPTER, True)
    _wait_for_reconnect(observations, address, 60)


def _restart_bluetoothd_mid_text(
    observations: dict[str, Any],
    recorder: KeyRecorder,
    voxkey: Voxkey,
    address: str,
    after_presses: int,
    the_stack: Stack,
) -> None:
    """bluetoothd restarts (a package upgrade, ``systemctl restart bluetooth``) while voxkey has text left.

    One bluetoothd serves both sides in this guest, so its restart is the host's too: reports the host's
    controller took but its bluetoothd had not read yet would die with it, which no keyboard can see and no
    real host does (its own stack does not restart with the Pi's). So voxkey is held (SIGSTOP) until the host
    has read everything, and let go once the stack is back. voxkey then meets what a Pi meets: its GATT
    application, advertisement and agent gone from a bluetoothd that knows nothing of them, the host's link
    gone, and the rest of the text still to type.
    """
    _wait_for_presses(observations, recorder, voxkey, after_presses)
    voxkey.process.send_signal(signal.SIGSTOP)
    try:
        recorder.wait_quiet(1.5, 60)
        observations["dropped_at_presses"] = recorder.key_presses
        the_stack.restart_bluetoothd(the_stack.current["binary"], tuple(the_stack.current["args"]))
        observations["restarted"] = the_stack.bluetoothd is not None and the_stack.bluetoothd.poll() is None
        observations["disconnected"] = not host_device_props(address).get("Connected")
    finally:
        voxkey.process.send_signal(signal.SIGCONT)
    observations["presses_while_down"] = recorder.key_presses - observations["dropped_at_presses"]
    _wait_for_reconnect(observations, address, 90)


def _set_powered(adapter: str, on: bool) -> dict[str, Any]:
    error = run_async(_write_powered(adapter, on))
    powered = wait_for(lambda: _adapter_powered(adapter) == on, 20, 0.2)
    return {"error": error, "powered_as_asked": powered}


async def _write_powered(adapter: str, on: bool) -> str | None:
    """BlueZ's Adapter1.Powered, as ``bluetoothctl power`` sets it; the D-Bus error text if it refused."""
    bus = await bluez.connect_system_bus()
    try:
        await bluez.set_property(bus, f"/org/bluez/{adapter}", bluez.ADAPTER, "Powered", Variant("b", on))
        return None
    except DBusError as exc:
        return exc.text or exc.type
    finally:
        bus.disconnect()


def _adapter_powered(adapter: str) -> bool:
    props = run_async(managed_objects()).get(f"/org/bluez/{adapter}", {}).get(bluez.ADAPTER, {})
    return bool(props.get("Powered"))


def rfkill_soft_switch(adapter: str) -> Path:
    """The ``soft`` attribute of the adapter's rfkill switch: write 1 to cut its radio, 0 to restore it."""
    switches = sorted(Path("/sys/class/bluetooth", adapter).glob("rfkill*/soft"))
    if not switches:
        raise RuntimeError(f"{adapter} has no rfkill switch")
    return switches[0]


class ProcessSampler(threading.Thread):
    """Every few seconds, what each process in the guest is doing: evidence if the guest stalls."""

    def __init__(self, path: Path, interval_s: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.path.open("w") as out:
            while not self.stopped.wait(self.interval_s):
                ps = subprocess.run(
                    ["ps", "-eLo", "pid,tid,stat,rtprio,pcpu,wchan:28,comm"], capture_output=True, text=True
                )
                busy = [line for line in ps.stdout.splitlines()[1:] if not line.split()[2].startswith(("S", "I"))]
                out.write(f"--- {time.time():.1f} load {Path('/proc/loadavg').read_text().strip()}\n")
                out.write("\n".join(busy) + "\n")
                out.flush()

    def stop(self) -> None:
        self.stopped.set()


@guest_case("bluetooth.pair_and_type", modules=MODULES, timeout_s=1500)
def pair_and_type(context: GuestContext) -> CaseResult:
    """Pairing mode, the host pairs, hog makes a keyboard, voxkey types 2,200 characters, then presses Eject."""
    return type_and_record(context, "pair", typing_text(), pair=True, eject=True)


@guest_case("bluetooth.drop_mid_text", modules=MODULES, timeout_s=1500)
def drop_mid_text(context: GuestContext) -> CaseResult:
    """voxkey's radio cuts out after 300 characters and comes back; the host reconnects, the text must be exact."""
    return type_and_record(context, "drop", typing_text(900), drop_after_presses=300)


@guest_case("bluetooth.power_cycle_mid_text", modules=MODULES, timeout_s=1500)
def power_cycle_mid_text(context: GuestContext) -> CaseResult:
    """voxkey's adapter is powered off after 300 characters and on again; the text must arrive exactly."""
    return type_and_record(context, "power", typing_text(900), drop_after_presses=300, power_cycle=True)


@guest_case("bluetooth.bluetoothd_restart_mid_text", modules=MODULES, timeout_s=1500)
def bluetoothd_restart_mid_text(context: GuestContext) -> CaseResult:
    """bluetoothd restarts after 300 characters; voxkey registers again, the host reconnects, the text is exact."""
    return type_and_record(context, "bluetoothd-restart", typing_text(900), drop_after_presses=300, restart_stack=True)


RESTART_ROUNDS = 3
SERVER_HANDLE = re.compile(r"database_add_(service|chrc|desc)\(\) handle 0x([0-9a-f]{4}) UUID ([0-9a-f-]+)")
HOST_CACHE_MISS = re.compile(r".*Invalid handle.*")


@guest_case("bluetooth.reconnect_after_restart", modules=MODULES, timeout_s=2700)
def reconnect_after_restart(context: GuestContext) -> CaseResult:
    """Three restarts: bluetoothd and voxkey (a power loss of the keyboard), then voxkey alone, twice.

    Each round a new voxkey types a line to the bonded host, which must come
    back by itself and use the handles it cached: every round records the
    attribute handles BlueZ gave voxkey's services (bluetoothd's debug log),
    the host's reads that failed on a stale handle, and the host's keyboard
    device, to compare across rounds.
    """
    the_stack = use_bluetoothd(context, hog_bluetoothd())
    out: dict[str, Any] = {}
    if not host_device_props(adapter_address(VOXKEY_ADAPTER)).get("Paired"):  # run on its own: bond first
        out["bonding"] = type_and_record(context, "restart-bond", "Bonded.\n", pair=True)
    out["rounds"] = restart_rounds(context, the_stack, hog_bluetoothd(), "restart")
    return out


def restart_rounds(context: GuestContext, the_stack: Stack, binary: str, label: str) -> list[dict[str, Any]]:
    """``RESTART_ROUNDS`` rounds with the bonded host: bluetoothd and voxkey restarted, then voxkey alone."""
    rounds = []
    for number in range(RESTART_ROUNDS):
        if number == 0:
            the_stack.restart_bluetoothd(binary)
        log_path = context.work_dir / f"bluetoothd-{len(the_stack.runs) - 1}.log"
        start = log_path.stat().st_size
        keyboard_before = find_input_event()
        seen = type_and_record(
            context,
            f"{label}{number}",
            f"Reconnected after restart {number}: no pairing needed!\n",
            bluetoothd=binary,
        )
        log_text = log_path.read_bytes()[start:].decode(errors="replace")
        seen["round"] = number
        seen["restarted"] = "bluetoothd and voxkey" if number == 0 else "voxkey"
        seen["server_handles"] = [
            f"{kind} {handle} {uuid[4:8]}" for kind, handle, uuid in SERVER_HANDLE.findall(log_text)
        ]
        seen["host_cache_misses"] = [line[-200:] for line in HOST_CACHE_MISS.findall(log_text)][:20]
        # BlueZ's GATT client compares the server's Database Hash with its cache and logs the verdict
        seen["discovery_skipped"] = log_text.count("DB Hash match: skipping discovery")
        seen["hash_mismatches"] = log_text.count("DB Hash value:")
        seen["keyboard_before"] = keyboard_before
        seen["keyboard_after"] = find_input_event()
        rounds.append(seen)
    return rounds


@guest_case("bluetooth.bleak_central", modules=MODULES, timeout_s=1500)
def bleak_central(context: GuestContext) -> CaseResult:
    """bleak on hci1 as the central: connect, subscribe to the input Report, collect what arrives.

    Runs on bookworm's bluetoothd 5.66 (the Pi's), with the hog plugin off so
    the HID service is not claimed by hog and appears on D-Bus for bleak.
    """
    the_stack = use_bluetoothd(context, SYSTEM_BLUETOOTHD, CENTRAL_PLUGINS_OFF, APP_CENTRAL_DEVICE_ID)
    address = adapter_address(VOXKEY_ADAPTER)
    bonded = bool(host_device_props(address).get("Paired"))
    voxkey = Voxkey(context, "bleak", BLEAK_TEXT, *(() if bonded else ("--pair",)))
    observations: dict[str, Any] = {"text": BLEAK_TEXT, "bluetoothd": the_stack.current, "was_bonded": bonded}
    observations["voxkey_ready"] = voxkey.wait_log(r"bluetooth: (pairing|waiting-for-host|connected)")
    if not bonded:
        observations["pairing"] = run_async(host_pair(address))
        run_async(host_device_call(address, "Disconnect"))
    try:
        with bleak_debug_log(context.work_dir / "bleak.log"):
            observations["bleak"] = _bleak_collect_surviving_a_crash(context, the_stack, address, voxkey, observations)
    finally:
        observations["voxkey"] = voxkey.finish(120)
    return observations


REGISTERED = "bluetooth: keyboard '" + VOXKEY_NAME + "' registered on"


def _bleak_collect_surviving_a_crash(
    context: GuestContext, the_stack: Stack, address: str, voxkey: Voxkey, observations: dict[str, Any]
) -> dict[str, Any]:
    """``bleak_collect``, once more if bluetoothd 5.66 crashed under it before bleak subscribed.

    One bluetoothd serves both adapters here, and bookworm's 5.66 has crashed in
    ``service_changed_conf`` (the Service Changed indication's confirmation
    arriving after the ATT channel it was sent on had gone) as bleak's link
    came and went. voxkey's side of that is the product's: it sees bluetoothd
    leave the bus and registers again when it is back, which is what the second
    try needs. The crash is recorded (``bluetoothd_crashes``) and the second try
    is judged as the first.
    """
    crashes: list[dict[str, Any]] = []
    observations["bluetoothd_crashes"] = crashes
    try:
        return bleak_collect(address, voxkey)
    except Exception as exc:
        bluetoothd = the_stack.bluetoothd
        if bluetoothd is None or bluetoothd.poll() is None or voxkey.process.poll() is not None:
            raise
        crashes.append({"exit": bluetoothd.returncode, "error": f"{type(exc).__name__}: {exc}"})
    registered = voxkey.log_text().count(REGISTERED)
    use_bluetoothd(context, SYSTEM_BLUETOOTHD, CENTRAL_PLUGINS_OFF, APP_CENTRAL_DEVICE_ID)  # starts it again
    crashes[-1]["voxkey_registered_again"] = (
        wait_for(
            lambda: voxkey.log_text().count(REGISTERED) > registered or voxkey.process.poll() is not None,
            BOOT_WAIT_S,
            0.2,
        )
        and voxkey.process.poll() is None
    )
    return bleak_collect(address, voxkey)


HOST_LINK_WAIT_S = 120.0
HOST_HANGUP_WAIT_S = 15.0


@contextlib.contextmanager
def bleak_debug_log(path: Path) -> Iterator[None]:
    """bleak's own debug log (its D-Bus traffic and decisions) in the work dir, beside voxkey's and bluetoothd's."""
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(relativeCreated)d ms %(name)s: %(message)s"))
    bleak_log = logging.getLogger("bleak")
    previous = bleak_log.level
    bleak_log.addHandler(handler)
    bleak_log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        bleak_log.removeHandler(handler)
        bleak_log.setLevel(previous)
        handler.close()


def bleak_collect(address: str, voxkey: Voxkey, timeout_s: float = 600) -> dict[str, Any]:
    """Connect with bleak, find the input Report by its Report Reference, subscribe until voxkey is done.

    bleak connects by itself first. In this guest that has lost a race every time, and not with
    voxkey: btvirt completes a connection before bluetoothd has read the kernel's Device Connected
    event (the ATT socket is ready first), BlueZ 5.66 answers bleak's Device1.Connect at once and
    never signals Connected=true for the host's device (bleak's debug log: ServicesResolved=true
    arrives, Connected=true never does, though GetManagedObjects says true). bleak 3.1 trusts its
    signal-fed cache, reads Connected=false as "failed to discover services, device disconnected"
    and hangs up. When that happens the host's BlueZ connects, as a tablet's system does for its
    apps, and bleak runs again in a new event loop, so its manager reads BlueZ's state afresh, sees
    the live connection and takes it (its path for an already connected device: no Connect call).
    Service discovery, the Report Reference reads, the subscription and every value below are bleak's.
    """
    from bleak.exc import BleakError

    out: dict[str, Any] = {"values": [], "connected_by": "bleak"}
    try:
        return run_async(_bleak_session(address, voxkey, timeout_s, out))
    except BleakError as exc:
        if "subscribed_properties" in out:
            raise  # after subscribing, a failure is a result, not the connection race
        out["bleak_connect_error"] = str(exc)
    out["connected_by"] = "host"
    out["host_link"] = run_async(_host_link_up(address))
    if not out["host_link"].get("up"):
        out["error"] = f"the host's BlueZ could not connect either: {out['host_link']}"
        return out
    return run_async(_bleak_session(address, voxkey, timeout_s, out))


async def _host_link_up(address: str, wait_s: float = HOST_LINK_WAIT_S) -> dict[str, Any]:
    """Device1.Connect on the host until BlueZ reports the link connected with its services resolved, twice in a row.

    First the link bleak hung up must be gone, or its last moments would count as up.
    """
    bus = await bluez.connect_system_bus()
    path = host_device_path(address)
    result: dict[str, Any] = {"connect_calls": 0, "connect_errors": []}
    started = time.monotonic()
    steady = 0
    try:
        while time.monotonic() - started < HOST_HANGUP_WAIT_S:
            if not (await bluez.managed_objects(bus)).get(path, {}).get(bluez.DEVICE, {}).get("Connected"):
                break
            await asyncio.sleep(0.2)
        result["hung_up_after_s"] = round(time.monotonic() - started, 2)
        while time.monotonic() - started < wait_s:
            props = (await bluez.managed_objects(bus)).get(path, {}).get(bluez.DEVICE, {})
            if props.get("Connected") and props.get("ServicesResolved"):
                steady += 1
                if steady >= 2:
                    result.update(up=True, after_s=round(time.monotonic() - started, 2))
                    return result
            else:
                steady = 0
            if not props.get("Connected"):
                result["connect_calls"] += 1
                try:
                    await bluez.call(bus, path, bluez.DEVICE, "Connect")
                except DBusError as exc:
                    result["connect_errors"].append(f"{exc.type}: {exc.text}")
            await asyncio.sleep(0.5)
    finally:
        bus.disconnect()
    result["up"] = False
    return result


async def _bleak_session(address: str, voxkey: Voxkey, timeout_s: float, out: dict[str, Any]) -> dict[str, Any]:
    from bleak import BleakClient
    from bleak.backends.device import BLEDevice

    objects = await managed_objects()
    path = host_device_path(address)
    device = BLEDevice(address, VOXKEY_NAME, {"path": path, "props": objects.get(path, {}).get(bluez.DEVICE, {})})
    started = time.monotonic()
    async with BleakClient(device, timeout=120, bluez={"adapter": HOST_ADAPTER}) as client:
        out["connected_after_s"] = round(time.monotonic() - started, 2)
        service = client.services.get_service(bluez.HID_SERVICE)
        if service is None:
            out["error"] = "no HID service"
            return out
        references: dict[int, str] = {}
        for characteristic in service.characteristics:
            if characteristic.uuid != bluez.REPORT:
                continue
            for descriptor in characteristic.descriptors:
                if descriptor.uuid == bluez.REPORT_REFERENCE:
                    references[characteristic.handle] = bytes(await client.read_gatt_descriptor(descriptor)).hex()
        out["report_references"] = {str(handle): value for handle, value in references.items()}
        keyboard_input = next((h for h, value in references.items() if value == "0101"), None)
        if keyboard_input is None:
            out["error"] = "no Report with Report Reference (id 1, input)"
            return out
        characteristic = next(c for c in service.characteristics if c.handle == keyboard_input)
        out["subscribed_properties"] = list(characteristic.properties)
        await client.start_notify(characteristic, lambda _c, data: out["values"].append(bytes(data).hex()))
        while voxkey.process.poll() is None and time.monotonic() - started < timeout_s:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        if client.is_connected:  # voxkey disconnects its hosts when it stops, as a keyboard losing power does
            await client.stop_notify(characteristic)
    return out


@guest_case("bluetooth.stranger_refused", modules=MODULES, timeout_s=1500)
def stranger_refused(context: GuestContext) -> CaseResult:
    """Forget the bond on both sides; the former host then tries to find, read, subscribe and pair outside pairing mode.

    hog is off on the host (bookworm's bluetoothd, as in the bleak case) so the
    HID characteristics appear on D-Bus and a read and a subscription can be tried.
    """
    return _stranger(context, SYSTEM_BLUETOOTHD, "stranger")


def _stranger(context: GuestContext, binary: str, label: str) -> CaseResult:
    the_stack = use_bluetoothd(context, binary, CENTRAL_PLUGINS_OFF, APP_CENTRAL_DEVICE_ID)
    address = adapter_address(VOXKEY_ADAPTER)
    observations: dict[str, Any] = {"bluetoothd": the_stack.current}
    observations.update(forget_both_sides(context, address))
    voxkey = Voxkey(context, label, "this must never arrive\n")
    observations["voxkey_ready"] = voxkey.wait_log(r"bluetooth: waiting-for-host")
    observations["attempts"] = run_async(_stranger_attempts(address))
    voxkey.process.send_signal(signal.SIGTERM)
    observations["voxkey"] = voxkey.finish(60)
    return observations


FORGOTTEN_TEXT = "typed while the host had forgotten voxkey\n"
PI_JUST_WORKS_REPAIRING = "confirm"
"""What ``install.sh`` sets on the Pi. Only this case runs with it: one bluetoothd plays both roles here, and
with it the 5.66 central of the bleak case went down another path and crashed once (hci1's side)."""
FORGOTTEN_WAIT_S = "20"


@guest_case("bluetooth.host_forgets_the_bond", modules=MODULES, timeout_s=2700)
def host_forgets_the_bond(context: GuestContext) -> CaseResult:
    """The host removes voxkey (its user chose "Forget this device"); voxkey still holds the bond.

    voxkey must then type nothing anywhere and hand the text back (``voxkey type`` writes the untyped
    text to standard output and fails), and pairing again from the host must work and type exactly,
    although voxkey's BlueZ still had the old keys for that address.
    """
    use_bluetoothd(context, hog_bluetoothd(), repairing=PI_JUST_WORKS_REPAIRING)
    address = adapter_address(VOXKEY_ADAPTER)
    forget_both_sides(context, address)  # a bond of its own, made here
    before = type_and_record(context, "forget-before", "bonded\n", pair=True, repairing=PI_JUST_WORKS_REPAIRING)
    observations: dict[str, Any] = {"before": before}
    observations["host_remove"] = run_async(_remove_device(HOST_ADAPTER, address))
    observations["host_device_after_remove"] = host_device_props(address)
    observations["voxkey_side_after_remove"] = voxkey_side_props(address)
    # the last --wait wins: no host can come now, so 20 s is enough to show that it waits and then gives up
    forgotten = Voxkey(context, "forgotten", FORGOTTEN_TEXT, "--wait", FORGOTTEN_WAIT_S)
    observations["forgotten"] = forgotten.finish(300)
    observations["host_device_while_forgotten"] = host_device_props(address)
    observations["after"] = type_and_record(
        context, "forget-after", typing_text(300), pair=True, repairing=PI_JUST_WORKS_REPAIRING
    )
    return observations


def forget_both_sides(context: GuestContext, address: str) -> dict[str, Any]:
    """No bond left on either side (``voxkey hosts forget`` and the host's RemoveDevice): a case that must
    pair from scratch does so whichever case bonded before it."""
    forget = subprocess.run(
        context.voxkey_command("hosts", "forget", adapter_address(HOST_ADAPTER), "--adapter", VOXKEY_ADAPTER),
        capture_output=True,
        text=True,
        env=context.voxkey_env(),
        check=False,
    )
    return {
        "voxkey_forget": {"rc": forget.returncode, "stderr": forget.stderr},
        "host_remove": run_async(_remove_device(HOST_ADAPTER, address)),
    }


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


async def _call_error(coroutine: Any) -> str | None:
    """None if the call went through, else the D-Bus error."""
    try:
        await coroutine
        return None
    except DBusError as exc:
        return f"{exc.type}: {exc.text}"


async def _stranger_attempts(address: str) -> dict[str, Any]:
    """Discovery (voxkey is not discoverable now), then direct connections: read, subscribe, pair."""
    out: dict[str, Any] = {"tries": []}
    bus = await bluez.connect_system_bus()
    adapter = f"/org/bluez/{HOST_ADAPTER}"
    device = host_device_path(address)
    try:
        await bluez.call(
            bus, adapter, bluez.ADAPTER, "SetDiscoveryFilter", "a{sv}", [{"Transport": Variant("s", "le")}]
        )
        await bluez.call(bus, adapter, bluez.ADAPTER, "StartDiscovery")
        await asyncio.sleep(20)
        listed = (await bluez.managed_objects(bus)).get(device, {}).get(bluez.DEVICE)
        out["listed_by_discovery"] = listed is not None
        # What a phone's "pair new device" list goes by: the LE Discoverable bits of the Flags AD.
        # BlueZ lists every advertiser it hears; the property is absent when the Flags AD is.
        flags = listed.get("AdvertisingFlags") if listed else None
        out["advertising_flags"] = bytes(flags).hex() if flags is not None else None
        with contextlib.suppress(DBusError):
            await bluez.call(bus, adapter, bluez.ADAPTER, "StopDiscovery")
        # voxkey disconnects a stranger within about a second, so whichever comes first in a
        # connection is the attempt that really reaches it: one try subscribes first, one reads first.
        for subscribe_first in (True, False, True, False):
            out["tries"].append(await _stranger_try(bus, adapter, device, address, subscribe_first))
            tried = {key for attempt in out["tries"] for key in ("read", "subscribe") if key in attempt}
            if tried == {"read", "subscribe"} and not subscribe_first:
                break
        out["pair"] = await _call_error(bluez.call(bus, device, bluez.DEVICE, "Pair")) or "paired"
        objects = await bluez.managed_objects(bus)
        out["device_after"] = {k: objects.get(device, {}).get(bluez.DEVICE, {}).get(k) for k in ("Connected", "Paired")}
    finally:
        bus.disconnect()
    return out


async def _subscription_state(bus: Any, device: str, characteristic: str) -> str:
    """What a successful StartNotify meant: BlueZ also answers success while the device is not
    connected (it queues the subscription for the next connection), so look at Notifying."""
    objects = await bluez.managed_objects(bus)
    notifying = objects.get(characteristic, {}).get(bluez.GATT_CHARACTERISTIC, {}).get("Notifying")
    connected = objects.get(device, {}).get(bluez.DEVICE, {}).get("Connected")
    if notifying:
        return "allowed"
    return "queued, not subscribed: " + ("connected" if connected else "disconnected by voxkey")


async def _try_read(bus: Any, device: str, report: str, attempt: dict[str, Any]) -> None:
    read = bluez.call(bus, report, bluez.GATT_CHARACTERISTIC, "ReadValue", "a{sv}", [{}])
    attempt["read"] = await _call_error(read) or "allowed"


async def _try_subscribe(bus: Any, device: str, report: str, attempt: dict[str, Any]) -> None:
    error = await _call_error(bluez.call(bus, report, bluez.GATT_CHARACTERISTIC, "StartNotify"))
    attempt["subscribe"] = error or await _subscription_state(bus, device, report)


async def _stranger_try(bus: Any, adapter: str, device: str, address: str, subscribe_first: bool) -> dict[str, Any]:
    """One connection by address; once the HID characteristics are known, read and subscribe to an input Report."""
    attempt: dict[str, Any] = {}
    objects = await bluez.managed_objects(bus)
    if device in objects:
        attempt["connect"] = await _call_error(bluez.call(bus, device, bluez.DEVICE, "Connect")) or "ok"
    else:
        options = {"Address": Variant("s", address), "AddressType": Variant("s", "public")}
        attempt["connect"] = (
            await _call_error(bluez.call(bus, adapter, bluez.ADAPTER, "ConnectDevice", "a{sv}", [options])) or "ok"
        )
    reports: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        objects = await bluez.managed_objects(bus)
        reports = [
            path
            for path, ifs in objects.items()
            if path.startswith(device + "/")
            and ifs.get(bluez.GATT_CHARACTERISTIC, {}).get("UUID") == bluez.REPORT
            and "notify" in ifs[bluez.GATT_CHARACTERISTIC].get("Flags", [])  # an input Report: one a host subscribes to
        ]
        props = objects.get(device, {}).get(bluez.DEVICE, {})
        attempt["connected"], attempt["services_resolved"] = props.get("Connected"), props.get("ServicesResolved")
        if reports or (attempt["connect"] == "ok" and not props.get("Connected")):
            break
        await asyncio.sleep(0.5)
    attempt["report_characteristics_visible"] = len(reports)
    if reports:
        steps = (_try_subscribe, _try_read) if subscribe_first else (_try_read, _try_subscribe)
        for step in steps:
            await step(bus, device, reports[0], attempt)
    with contextlib.suppress(DBusError):
        await bluez.call(bus, device, bluez.DEVICE, "Disconnect")
    await asyncio.sleep(2)
    return attempt


@contextlib.contextmanager
def bluetoothd_dropin(binary: str) -> Iterator[Path]:
    """The systemd drop-in ``install.sh --bluetoothd-for-old-hosts`` writes, on a tmpfs over the guest's units.

    voxkey reads it to know its bluetoothd sends single notifications (``hostcompat``); the guest has no
    systemd, so the case starts that bluetoothd itself. The tmpfs keeps the outer machine's /etc untouched.
    """
    subprocess.run(["mount", "-t", "tmpfs", "voxkey-units", str(SYSTEMD_UNITS)], check=True)
    try:
        dropin = SYSTEMD_UNITS / "bluetooth.service.d" / "voxkey-bluetoothd.conf"
        dropin.parent.mkdir()
        dropin.write_text(f"[Service]\nExecStart=\nExecStart={binary}\n")
        yield dropin
    finally:
        subprocess.run(["umount", str(SYSTEMD_UNITS)], check=False)


@guest_case("bluetooth.old_bluez_host_single_notifications", modules=MODULES, timeout_s=1500)
def old_bluez_host_single_notifications(context: GuestContext) -> CaseResult:
    """The same Debian 12 host, with the Pi's bluetoothd rebuilt to send single notifications: it must type.

    One bluetoothd serves both controllers, so the host runs that build too. The patch only changes
    which opcode its GATT server sends (``send_notification_to_device``); the host's GATT client and hog,
    which receive, are bookworm's 5.66 as they are.
    """
    use_bluetoothd(context, SINGLE_NOTIFICATIONS_BLUETOOTHD)
    forget_both_sides(context, adapter_address(VOXKEY_ADAPTER))
    with bluetoothd_dropin(SINGLE_NOTIFICATIONS_BLUETOOTHD):
        observations = type_and_record(
            context, "old-host-single", typing_text(1600), pair=True, bluetoothd=SINGLE_NOTIFICATIONS_BLUETOOTHD
        )
    observations["built_from"] = Path(SINGLE_NOTIFICATIONS_BLUETOOTHD + ".built-from").read_text().strip()
    return observations


@guest_case("bluetooth.old_bluez_host_drop_mid_text", modules=MODULES, timeout_s=1500)
def old_bluez_host_drop_mid_text(context: GuestContext) -> CaseResult:
    """That 5.66 host and rebuilt bluetoothd: voxkey's radio cuts out after 300 characters and comes back."""
    with bluetoothd_dropin(SINGLE_NOTIFICATIONS_BLUETOOTHD):
        return type_and_record(
            context,
            "old-host-drop",
            typing_text(900),
            drop_after_presses=300,
            bluetoothd=SINGLE_NOTIFICATIONS_BLUETOOTHD,
        )


@guest_case("bluetooth.old_bluez_host_reconnect_after_restart", modules=MODULES, timeout_s=2700)
def old_bluez_host_reconnect_after_restart(context: GuestContext) -> CaseResult:
    """The restart rounds of ``reconnect_after_restart`` with that 5.66 host and rebuilt bluetoothd.

    Bonded afresh first: the attribute caches of both sides must come from this BlueZ (``restart_bluetoothd``
    drops them when the binary changes), or the first round's rediscovery would be the switch's, not voxkey's.
    """
    the_stack = use_bluetoothd(context, SINGLE_NOTIFICATIONS_BLUETOOTHD)
    with bluetoothd_dropin(SINGLE_NOTIFICATIONS_BLUETOOTHD):
        forget_both_sides(context, adapter_address(VOXKEY_ADAPTER))
        bonding = type_and_record(
            context, "old-host-restart-bond", "Bonded.\n", pair=True, bluetoothd=SINGLE_NOTIFICATIONS_BLUETOOTHD
        )
        rounds = restart_rounds(context, the_stack, SINGLE_NOTIFICATIONS_BLUETOOTHD, "old-host-restart")
    return {"bonding": bonding, "rounds": rounds}


@guest_case("bluetooth.old_bluez_host_stranger_refused", modules=MODULES, timeout_s=1500)
def old_bluez_host_stranger_refused(context: GuestContext) -> CaseResult:
    """``stranger_refused`` with voxkey on the rebuilt 5.66 (hog off on the host, as there)."""
    with bluetoothd_dropin(SINGLE_NOTIFICATIONS_BLUETOOTHD):
        return _stranger(context, SINGLE_NOTIFICATIONS_BLUETOOTHD, "old-host-stranger")


@guest_case("bluetooth.old_bluez_host", modules=MODULES, timeout_s=1500)
def old_bluez_host(context: GuestContext) -> CaseResult:
    """A host on Debian 12's own bluetoothd 5.66 with its hog on: voxkey must refuse it loudly.

    One bluetoothd serves both controllers in this guest (see the module
    docstring), so voxkey's side runs 5.66 here too: the Pi on Raspberry Pi
    OS bookworm. The host pairs, its hog subscribes, and voxkey must see from
    the host's Modalias that its hog drops what BlueZ sends and fail instead
    of typing into the void.
    """
    use_bluetoothd(context, SYSTEM_BLUETOOTHD)
    forget_both_sides(context, adapter_address(VOXKEY_ADAPTER))  # the case before may have bonded this host
    return type_and_record(context, "old-host", typing_text(1600), pair=True, bluetoothd=SYSTEM_BLUETOOTHD)
