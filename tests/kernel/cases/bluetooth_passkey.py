"""Guest case: passkey pairing on a real kernel and a real BlueZ: the right code bonds, a wrong one does not.

voxkey serves on hci0 with ``bluetooth.pairing: passkey``: ``voxkey pair`` on
a terminal (a pty here), so its agent registers as KeyboardOnly and answers
BlueZ's ``RequestPasskey`` with the code typed there, through the same parser
(``voxkey.text.digits``) the daemon reads the spoken code with. hci1 plays the
host: its agent is KeyboardDisplay, so BlueZ shows it the passkey
(``DisplayPasskey``) and the case types it (or a wrong one) on voxkey's terminal.

Why typed here: this is ``voxkey pair``'s terminal source, and this case runs
in the wall-clock guest, where whisper tiny.en (an emulated CPU, no KVM) took
39.6 s for a spoken code, longer than the kernel's 30 s pairing timer
(``SMP_TIMEOUT``). The spoken code, with the daemon and whisper in a guest whose
clock counts instructions, is ``bluetooth_spoken.py``.

Two rounds in one pairing window: first a wrong code (each digit plus one),
which must fail and leave no bond; then the host pairs again and the right
code is typed. Then, with fresh ``voxkey pair`` runs: a host that claims to
have no display must not get a Just Works bond from passkey mode (no
downgrade), and ``--pairing just_works`` bonds such a host (its key's level
goes into the security table). What both BlueZ stores say about the bond (the
``[LongTermKey]`` of ``/var/lib/bluetooth/<adapter>/<peer>/info``) is recorded
for ``tests/kernel/test_bluetooth_passkey.py``. A round in which BlueZ gave up
before it showed a code (a known race of the virtual controllers) is tried
again, up to three times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbus_fast import DBusError, Variant
from dbus_fast.annotations import DBusObjectPath, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from tests.kernel.cases import CaseResult, GuestContext, guest_case, wait_for
from tests.kernel.cases.bluetooth import (
    HOST_ADAPTER,
    MODULES,
    VOXKEY_ADAPTER,
    VOXKEY_NAME,
    adapter_address,
    hog_bluetoothd,
    host_device_path,
    host_device_props,
    run_async,
    use_bluetoothd,
)
from voxkey.transports.bluetooth import bluez

HOST_AGENT_PATH = "/test/passkey_host_agent"
KEYBOARD_DISPLAY = 4
NO_INPUT_NO_OUTPUT = 3
"""SMP IO capability values (btmgmt io-cap takes the number)."""


class DisplayingHostAgent(ServiceInterface):  # type: ignore[misc]
    """A host with a screen (KeyboardDisplay): BlueZ shows it the passkey, and the case says it."""

    def __init__(self, on_passkey: Any) -> None:
        super().__init__(bluez.AGENT)
        self.calls: list[str] = []
        self.on_passkey = on_passkey
        self.passkeys: list[int] = []

    @dbus_method()
    def DisplayPasskey(self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16) -> bluez.DBusNone:
        self.calls.append(f"DisplayPasskey(entered={entered})")
        if not self.passkeys or self.passkeys[-1] != passkey:
            self.passkeys.append(passkey)
            self.on_passkey(passkey)

    @dbus_method()
    def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        """Both sides enter (the host's IO capability was KeyboardOnly too): its user picks the code."""
        self.calls.append("RequestPasskey")
        passkey = secrets.randbelow(1_000_000)
        self.passkeys.append(passkey)
        self.on_passkey(passkey)
        return passkey

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> bluez.DBusNone:
        self.calls.append(f"RequestConfirmation({passkey})")
        raise DBusError(bluez.ERROR_REJECTED, "numeric comparison is not what a keyboard does")

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> bluez.DBusNone:
        self.calls.append("RequestAuthorization")

    @dbus_method()
    def Cancel(self) -> bluez.DBusNone:
        self.calls.append("Cancel")

    @dbus_method()
    def Release(self) -> bluez.DBusNone:
        return None


def wrong_code(passkey: int) -> str:
    """Every digit of the host's code plus one: six digits, none of them right."""
    return "".join(str((int(digit) + 1) % 10) for digit in f"{passkey:06d}")


async def host_pair_typing(address: str, terminal: int, wrong: bool) -> dict[str, Any]:
    """hci1 pairs with voxkey as a host with a screen; the code it shows is typed on voxkey's terminal."""

    def enter(code: str) -> None:
        os.write(terminal, f"{' '.join(code)}\n".encode())  # "4 7 0 9 1 2", as whisper writes digits

    return await host_pair(address, enter, wrong)


async def host_pair(address: str, enter: Callable[[str], None], wrong: bool) -> dict[str, Any]:
    """hci1 pairs with voxkey as a host with a screen; ``enter`` gets the code to give voxkey (or a wrong one).

    ``enter`` runs on the D-Bus loop of the host's agent: it must hand the code over and return.
    """
    result: dict[str, Any] = {"wrong": wrong}
    bus = await bluez.connect_system_bus()

    def on_passkey(passkey: int) -> None:
        entered = wrong_code(passkey) if wrong else f"{passkey:06d}"
        result["shown"], result["entered"] = f"{passkey:06d}", entered
        result["shown_after_s"] = round(time.monotonic() - started, 2)
        result["shown_at"] = time.monotonic()
        enter(entered)

    agent = DisplayingHostAgent(on_passkey)
    bus.export(HOST_AGENT_PATH, agent)
    adapter = f"/org/bluez/{HOST_ADAPTER}"
    device = host_device_path(address)
    started = time.monotonic()
    try:
        await bluez.call(
            bus, "/org/bluez", bluez.AGENT_MANAGER, "RegisterAgent", "os", [HOST_AGENT_PATH, "KeyboardDisplay"]
        )
        await bluez.call(
            bus, adapter, bluez.ADAPTER, "SetDiscoveryFilter", "a{sv}", [{"Transport": Variant("s", "le")}]
        )
        await bluez.call(bus, adapter, bluez.ADAPTER, "StartDiscovery")
        while time.monotonic() - started < 180:
            if device in await bluez.managed_objects(bus):
                break
            await asyncio.sleep(0.5)
        result["discovered_after_s"] = round(time.monotonic() - started, 2)
        pair_started = time.monotonic()
        try:
            await bluez.call(bus, device, bluez.DEVICE, "Pair")
            result["paired"] = True
        except DBusError as exc:
            result["paired"] = False
            result["pair_error"] = f"{exc.type}: {exc.text}"
        result["pair_s"] = round(time.monotonic() - pair_started, 2)
        result["pair_ended_at"] = time.monotonic()
        with contextlib.suppress(DBusError):
            await bluez.call(bus, adapter, bluez.ADAPTER, "StopDiscovery")
        result["agent_calls"] = agent.calls
    finally:
        with contextlib.suppress(Exception):
            await bluez.call(bus, "/org/bluez", bluez.AGENT_MANAGER, "UnregisterAgent", "o", [HOST_AGENT_PATH])
        bus.disconnect()
    return result


def stored_bond(adapter_addr: str, peer_addr: str) -> dict[str, Any]:
    """BlueZ's stored keys for ``peer_addr`` on ``adapter_addr``: the groups and keys of its ``info`` file.

    Key values are replaced by their length (they are secrets even in a test guest's log).
    """
    info = Path("/var/lib/bluetooth") / adapter_addr / peer_addr / "info"
    if not info.exists():
        return {"exists": False}
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in info.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            groups[group] = {}
        elif "=" in line and group:
            key, value = line.split("=", 1)
            groups[group][key] = f"<{len(value)} chars>" if key == "Key" else value
    return {"exists": True, "groups": groups}


async def remove_device(adapter: str, address: str) -> str | None:
    bus = await bluez.connect_system_bus()
    try:
        path = f"/org/bluez/{adapter}/dev_{address.replace(':', '_')}"
        await bluez.call(bus, f"/org/bluez/{adapter}", bluez.ADAPTER, "RemoveDevice", "o", [path])
        return None
    except DBusError as exc:
        return f"{exc.type}: {exc.text}"
    finally:
        bus.disconnect()


def set_host_io_capability(capability: int) -> dict[str, Any]:
    """The host's (hci1's) IO capability, as its own bluetoothd would have it with its own agent.

    bluetoothd gives every adapter its default agent's IO capability (voxkey's), also hci1, and a
    ``Pair()`` call does not change it; so the case sets what the host should be.
    """
    done = subprocess.run(
        ["btmgmt", "--index", HOST_ADAPTER.removeprefix("hci"), "io-cap", str(capability)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return {"capability": capability, "rc": done.returncode, "out": (done.stdout + done.stderr).strip()[-300:]}


class VoxkeyPair:
    """``voxkey pair`` on hci0 with a pty as its terminal (where the code is typed)."""

    def __init__(self, context: GuestContext, label: str, pairing: str, timeout_s: int) -> None:
        self.log_path = context.work_dir / f"voxkey-pair-{label}.log"
        self.terminal, slave = pty.openpty()
        command = context.voxkey_command(
            "--debug",
            "pair",
            "--adapter",
            VOXKEY_ADAPTER,
            "--name",
            VOXKEY_NAME,
            "--pairing",
            pairing,
            "--timeout",
            str(timeout_s),
        )
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, stdin=slave, stdout=subprocess.PIPE, stderr=log, env=context.voxkey_env()
            )
        os.close(slave)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_pairing_mode(self) -> bool:
        wait_for(lambda: "pairing mode on" in self.log_text() or self.process.poll() is not None, 300, 0.5)
        return "pairing mode on" in self.log_text()

    def finish(self, stop: bool = False) -> dict[str, Any]:
        if stop:
            self.process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = self.process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            stdout, _ = self.process.communicate(timeout=60)
        os.close(self.terminal)
        text = self.log_text()
        return {
            "rc": self.process.returncode,
            "stdout": stdout.decode(errors="replace"),
            "log_tail": text[-4000:],
            "agent_log": [line for line in text.splitlines() if "agent" in line or "code" in line][-20:],
        }


def pair_round(address: str, host_address: str, terminal: int, wrong: bool) -> dict[str, Any]:
    seen: dict[str, Any] = run_async(host_pair_typing(address, terminal, wrong))
    seen["host_device"] = host_device_props(address)
    seen["voxkey_store"] = stored_bond(address, host_address)
    seen["host_store"] = stored_bond(host_address, address)
    return seen


def forget_both(address: str, host_address: str) -> list[str | None]:
    return [run_async(remove_device(HOST_ADAPTER, address)), run_async(remove_device(VOXKEY_ADAPTER, host_address))]


@guest_case("bluetooth.passkey_pairing", modules=MODULES, timeout_s=1200.0)
def passkey_pairing(context: GuestContext) -> CaseResult:
    use_bluetoothd(context, hog_bluetoothd())
    address, host_address = adapter_address(VOXKEY_ADAPTER), adapter_address(HOST_ADAPTER)
    observations: dict[str, Any] = {"voxkey_address": address, "host_address": host_address}
    observations["cleanup_before"] = forget_both(address, host_address)  # whatever an earlier case left

    # 1. Passkey mode, a host with a screen: a wrong code, then the right one.
    voxkey = VoxkeyPair(context, "passkey", "passkey", 600)
    observations["pairing_mode"] = voxkey.wait_pairing_mode()
    observations["host_io_cap"] = set_host_io_capability(KEYBOARD_DISPLAY)
    rounds: list[dict[str, Any]] = []
    if observations["pairing_mode"]:
        for wrong in (True, False):
            for _attempt in range(3):  # BlueZ giving up before it showed a code is tried again
                rounds.append(pair_round(address, host_address, voxkey.terminal, wrong))
                if "shown" in rounds[-1] or rounds[-1].get("paired"):
                    break
                time.sleep(2)
    observations["rounds"] = rounds
    observations["voxkey"] = voxkey.finish()
    observations["cleanup_passkey"] = forget_both(address, host_address)

    # 2. Passkey mode, a host that says it has no display: Just Works must be refused (no downgrade).
    voxkey = VoxkeyPair(context, "downgrade", "passkey", 120)
    downgrade: dict[str, Any] = {"pairing_mode": voxkey.wait_pairing_mode()}
    downgrade["host_io_cap"] = set_host_io_capability(NO_INPUT_NO_OUTPUT)
    if downgrade["pairing_mode"]:
        downgrade["round"] = pair_round(address, host_address, voxkey.terminal, wrong=False)
    downgrade["voxkey"] = voxkey.finish(stop=True)
    observations["downgrade"] = downgrade
    observations["cleanup_downgrade"] = forget_both(address, host_address)

    # 3. Just Works mode (bluetooth.pairing: just_works): the bond it gives, for the security table.
    voxkey = VoxkeyPair(context, "just_works", "just_works", 600)
    just_works: dict[str, Any] = {"pairing_mode": voxkey.wait_pairing_mode()}
    if just_works["pairing_mode"]:
        just_works["round"] = pair_round(address, host_address, voxkey.terminal, wrong=False)
    just_works["voxkey"] = voxkey.finish()
    observations["just_works"] = just_works
    observations["cleanup_after"] = forget_both(address, host_address)  # no bond for the cases after this
    return observations
