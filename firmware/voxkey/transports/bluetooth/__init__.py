"""Bluetooth LE keyboard (HID over GATT) through BlueZ: voxkey's wireless transport.

API for the daemon and the CLI (everything is synchronous and thread-safe)::

    from voxkey.transports.bluetooth import (
        BluetoothSettings, BluetoothState, BluetoothPeripheral, BluetoothLink, open_bluetooth_link,
    )

    settings = BluetoothSettings(name="voxkey", pairing_timeout_s=120, preferred_host=None, adapter="hci0")

    # Simple: a ReportLink for voxkey.transports.base.Keyboard (starts the keyboard).
    link = open_bluetooth_link(settings)           # BluetoothError if BlueZ/adapter unusable
    keyboard = Keyboard(link, layout, host_wait_s=None)
    keyboard.type("hello")                         # waits for a bonded host; nothing lost or doubled
    link.peripheral.start_pairing()                # long press: pairable + discoverable for 120 s
    link.peripheral.state                          # BluetoothState: PAIRING / WAITING_FOR_HOST / CONNECTED
    link.send_consumer(CONSUMER_EJECT)             # media key, e.g. Eject brings back an iPad's keyboard
    link.close()                                   # drains, then unregisters from BlueZ

    # For LEDs: a callback on every state change (runs on the Bluetooth thread; keep it short).
    peripheral = BluetoothPeripheral(settings, on_state=lambda state: leds.show(state.value))
    link = BluetoothLink(peripheral, owns_peripheral=True)
    link.start_delivery_tracking()                 # needs CAP_NET_RAW (HCI monitor), see link.py
    peripheral.start()
    future = peripheral.start_pairing(timeout_s=None)   # resolves to the bonded address or None
    peripheral.stop_pairing()
    # bluetooth.pairing: passkey (default): where the code the host shows comes from
    peripheral.set_passkey_source(lambda device: future_of_six_digits)   # the daemon: the user says it

    # Bonded hosts (no running keyboard needed):
    list_hosts(adapter) -> list[BondedHost];  forget_host(address, adapter)

Requirements on the Pi: bluetoothd running (BlueZ ≥ 5.66), the system D-Bus,
and CAP_NET_RAW for the HCI monitor that tells which reports the host
acknowledged (``delivery.py``). ``hardware/bluetooth.md`` has the details.

The names load lazily, each from its own module on first use: the stack
imports dbus-fast and asyncio (about 50 ms on a PC, an estimated 0.15-0.2 s on
a Pi Zero 2 W), and ``voxkey config check`` or ``voxkey type --transport usb`` reach
this package only for ``BluetoothSettings`` (``settings.py``, light).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxkey.hid import CONSUMER_EJECT
    from voxkey.transports.bluetooth.hosts import BondedHost, forget_host, list_hosts
    from voxkey.transports.bluetooth.link import BluetoothLink, ReportPacer, open_bluetooth_link
    from voxkey.transports.bluetooth.peripheral import BluetoothPeripheral
    from voxkey.transports.bluetooth.settings import BluetoothSettings, BluetoothState

_MODULE_OF = {
    "CONSUMER_EJECT": "voxkey.hid",
    "BondedHost": "voxkey.transports.bluetooth.hosts",
    "forget_host": "voxkey.transports.bluetooth.hosts",
    "list_hosts": "voxkey.transports.bluetooth.hosts",
    "BluetoothLink": "voxkey.transports.bluetooth.link",
    "ReportPacer": "voxkey.transports.bluetooth.link",
    "open_bluetooth_link": "voxkey.transports.bluetooth.link",
    "BluetoothPeripheral": "voxkey.transports.bluetooth.peripheral",
    "BluetoothSettings": "voxkey.transports.bluetooth.settings",
    "BluetoothState": "voxkey.transports.bluetooth.settings",
}
"""Where each public name is defined: imported from there when first asked for (PEP 562)."""

__all__ = [
    "CONSUMER_EJECT",
    "BluetoothLink",
    "BluetoothPeripheral",
    "BluetoothSettings",
    "BluetoothState",
    "BondedHost",
    "ReportPacer",
    "forget_host",
    "list_hosts",
    "open_bluetooth_link",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
