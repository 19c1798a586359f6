"""Bonded hosts: list them, forget one, and which one is preferred.

A bonded host is what the running keyboard accepts (``DeviceView.is_bonded_host``):
paired, with keys stored, and marked Trusted by voxkey when it bonded in
pairing mode. A device BlueZ paired some other way is not listed: voxkey
would disconnect it.

These talk to bluetoothd directly (no running keyboard needed), so ``voxkey
hosts`` works while the daemon runs: BlueZ stores the bonds, voxkey only marks
the hosts it bonded in pairing mode as Trusted.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from dbus_fast import DBusError

from voxkey.errors import BluetoothError
from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.devices import device_from

ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True)
class BondedHost:
    address: str
    name: str
    connected: bool
    trusted: bool
    preferred: bool
    problem: str | None = None
    """Why this host cannot receive keys (its BlueZ version, ``hostcompat``), or None."""


async def list_hosts_async(adapter: str = "hci0", preferred: str | None = None) -> list[BondedHost]:
    bus = await bluez.connect_system_bus()
    try:
        adapter_object = await bluez.adapter_path(bus, adapter)
        objects = await bluez.managed_objects(bus)
    finally:
        bus.disconnect()
    hosts = []
    for path, interfaces in sorted(objects.items()):
        props = interfaces.get(bluez.DEVICE)
        if props is None or not path.startswith(adapter_object + "/"):
            continue
        device = device_from(path, props)
        if not device.is_bonded_host:
            continue
        hosts.append(
            BondedHost(
                address=device.address,
                name=str(props.get("Alias") or device.name),
                connected=device.connected,
                trusted=device.trusted,
                preferred=bool(preferred) and device.address.upper() == (preferred or "").upper(),
                problem=device.problem,
            )
        )
    return hosts


async def forget_host_async(address: str, adapter: str = "hci0") -> None:
    """Remove the bond: the host must pair again (in pairing mode) to use voxkey."""
    if not ADDRESS.match(address):
        raise BluetoothError(f"{address!r} is not a Bluetooth address like AA:BB:CC:DD:EE:FF")
    bus = await bluez.connect_system_bus()
    try:
        adapter_object = await bluez.adapter_path(bus, adapter)
        device = bluez.device_path(adapter_object, address)
        objects = await bluez.managed_objects(bus)
        if device not in objects:
            raise BluetoothError(f"no host {address.upper()} on {adapter}; 'voxkey hosts list' shows the bonded ones")
        try:
            await bluez.call(bus, adapter_object, bluez.ADAPTER, "RemoveDevice", "o", [device])
        except DBusError as exc:
            raise BluetoothError(f"BlueZ could not forget {address.upper()}: {exc.text or exc.type}") from exc
    finally:
        bus.disconnect()


def list_hosts(adapter: str = "hci0", preferred: str | None = None) -> list[BondedHost]:
    return asyncio.run(list_hosts_async(adapter, preferred))


def forget_host(address: str, adapter: str = "hci0") -> None:
    asyncio.run(forget_host_async(address, adapter))
