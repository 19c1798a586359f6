"""BlueZ's devices on our adapter as the running keyboard sees them, kept current from BlueZ's signals.

bluetoothd announces every change as a D-Bus signal (``PropertiesChanged``,
``InterfacesAdded``/``Removed``, and ``NameOwnerChanged`` when it restarts).
The mirror parses them into the device table and into a few events; what the
events mean for the keyboard (re-register, decide again, log a failed pairing)
is for the callbacks to say. The table is read from other threads too (the
link asks for the ready host), so it is guarded by ``lock``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.devices import DeviceView, describe, device_from, unwrap

log = logging.getLogger(__name__)

MATCH_RULES = (
    f"type='signal',sender='{bluez.BLUEZ}',interface='{bluez.PROPERTIES}',member='PropertiesChanged'",
    f"type='signal',sender='{bluez.BLUEZ}',interface='{bluez.OBJECT_MANAGER}'",
    "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
)
"""The signals ``on_message`` reads: the bus sends us only these (``AddMatch``)."""


@dataclass(frozen=True)
class MirrorEvents:
    """What the mirror tells its owner; every callback runs on the loop thread, inside ``on_message``."""

    changed: Callable[[], None]
    """A device appeared, went, or changed a property: the policy must look again."""
    powered: Callable[[bool], None]
    """The adapter's radio went off or came back (each ``Powered`` change BlueZ reports)."""
    bluez_present: Callable[[bool], None]
    """bluetoothd left the bus (False) or came back (True): our registrations are gone either way."""
    pairing_aborted: Callable[[str, str], None]
    """A host that had not bonded disconnected: ``(address, why)``; called with ``lock`` held."""


class DeviceMirror:
    """The remote devices on one adapter (``devices``), and when a host last arrived (``host_arrived_at``)."""

    def __init__(self, adapter_path: str, events: MirrorEvents) -> None:
        self.adapter_path = adapter_path
        self.events = events
        self.devices: dict[str, DeviceView] = {}
        """By D-Bus object path; written on the loop thread under ``lock``, read anywhere under it."""
        self.lock = threading.Lock()
        self.host_arrived_at = 0.0
        """``time.monotonic()`` when a host last subscribed or (re)attached: the link lets it settle first."""
        self._told_unsupported: set[str] = set()
        """Device paths whose unusable stack was logged during their current connection (loop thread only)."""

    async def subscribe(self, bus: MessageBus) -> None:
        """Read every message on ``bus`` from now on, and ask the bus daemon for BlueZ's signals (``MATCH_RULES``).

        The handler goes first, so no signal that a rule brings in is missed.
        """
        bus.add_message_handler(self.on_message)
        for rule in MATCH_RULES:
            await bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="AddMatch",
                    signature="s",
                    body=[rule],
                )
            )

    def load(self, objects: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Replace the table with the devices on our adapter among ``bluez.managed_objects``' answer."""
        devices = {
            path: device_from(path, interfaces[bluez.DEVICE])
            for path, interfaces in objects.items()
            if bluez.DEVICE in interfaces and path.startswith(self.adapter_path + "/")
        }
        with self.lock:
            self.devices = devices

    def clear(self) -> None:
        with self.lock:
            self.devices.clear()

    def snapshot(self) -> list[DeviceView]:
        with self.lock:
            return list(self.devices.values())

    def host_arrived(self) -> None:
        """A host subscribed to key reports: it needs the same settling time as one that just attached."""
        self.host_arrived_at = time.monotonic()

    def on_message(self, message: Message) -> None:
        """The bus's message handler for BlueZ's signals (returns None: every other handler sees them too)."""
        if message.message_type != MessageType.SIGNAL:
            return
        if message.member == "NameOwnerChanged":
            _, _, new_owner = message.body
            self.events.bluez_present(bool(new_owner))
            return
        if (
            message.member == "PropertiesChanged"
            and message.path == self.adapter_path
            and message.body[0] == bluez.ADAPTER
            and "Powered" in message.body[1]
        ):
            self.events.powered(bool(unwrap(message.body[1])["Powered"]))
            return
        with self.lock:
            changed = self._apply(message)
        if changed:
            self.events.changed()

    def _apply(self, message: Message) -> bool:
        """Update the table from one device signal; True if anything in it changed."""
        if message.member == "PropertiesChanged" and message.body[0] == bluez.DEVICE:
            device = self.devices.get(message.path or "")
            if device is None:
                return False
            changes = unwrap(message.body[1])
            log.debug("bluetooth: %s %s", device.address, describe(changes))
            if changes.get("Connected") is False and device.connected and not device.paired:
                self.events.pairing_aborted(device.address, "it disconnected before bonding")
            device.update(changes)
            if changes.get("ServicesResolved") and device.is_bonded_host:
                self.host_arrived()
            return True
        if message.member == "InterfacesAdded" and bluez.DEVICE in message.body[1]:
            path = message.body[0]
            if not path.startswith(self.adapter_path + "/"):
                return False
            self.devices[path] = device_from(path, unwrap(message.body[1][bluez.DEVICE]))
            return True
        if message.member == "InterfacesRemoved" and bluez.DEVICE in message.body[1]:
            return self.devices.pop(message.body[0], None) is not None
        return False

    def report_unusable(self, devices: list[DeviceView]) -> None:
        """Log a connected host whose stack drops our key reports, once per connection (``hostcompat``)."""
        for device in devices:
            if not device.connected:
                self._told_unsupported.discard(device.path)
            elif device.problem and device.path not in self._told_unsupported:
                self._told_unsupported.add(device.path)
                log.error("bluetooth: %s (%s): %s", device.address, device.name or "no name", device.problem)
