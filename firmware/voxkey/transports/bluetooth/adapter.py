"""Our standing with bluetoothd on one adapter: the bus, whether our registrations stand, the radio, and its calls.

Pairing mode, the advertiser, the policy enforcer and the peripheral's
lifecycle all act on the same adapter over the same bus, and all must know
whether bluetoothd currently holds our registrations (it forgets them when it
restarts) and whether the radio is on (BlueZ refuses advertisements while it is
off). One small object carries that, so none of them reaches into another.

Everything here runs on the peripheral's loop thread (``loop_thread``); the
flags are plain attributes for that reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dbus_fast import DBusError, Variant
from dbus_fast.aio import MessageBus

from voxkey.errors import BluetoothError
from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.devices import DeviceView

log = logging.getLogger(__name__)


@dataclass
class AdapterSession:
    """One adapter (``hci0``) as voxkey's keyboard uses it; owned by the loop thread."""

    name: str
    """The adapter as the user configured it (``hci0``), for messages."""
    bus: MessageBus | None = None
    """The system bus while the peripheral runs; None before ``start`` and after ``close``."""
    owner: str | None = None
    """The bluetoothd that holds our GATT application and agent, by its unique bus name (``:1.4``);
    None until voxkey has registered, and again from the moment that bluetoothd leaves the bus.

    The advertisement goes only there, never to ``org.bluez`` as such. Found in the kernel guest: after
    a bluetoothd restart, an evaluation still running on the old one's signals registered an advertisement
    with the *new* bluetoothd before voxkey had registered its keyboard service there. The bonded host
    connected at once, found a keyboard without an HID service, dropped its keyboard, and stored that
    (it did not reconnect after the next restart). Sent to the old unique name, the call fails instead,
    and the advertisement comes after the service, as on a fresh start."""
    powered: bool = False
    """The adapter's radio is on. An rfkill block or a controller reset turns it off under us;
    BlueZ refuses advertisements meanwhile, and the kernel forgets the one we had."""
    closing: bool = False
    """Shutdown has begun: it makes its own changes, and the policy must not undo them."""

    @property
    def registered(self) -> bool:
        """bluetoothd holds our GATT application and agent (False again the moment it leaves the bus)."""
        return self.owner is not None

    @property
    def path(self) -> str:
        return f"/org/bluez/{self.name}"

    def require_bus(self) -> MessageBus:
        if self.bus is None:
            raise BluetoothError("not connected to the system D-Bus")
        return self.bus

    async def set(self, name: str, value: Variant) -> None:
        """Set one ``Adapter1`` property; a refusal becomes a ``BluetoothError`` naming the adapter."""
        try:
            await bluez.set_property(self.require_bus(), self.path, bluez.ADAPTER, name, value)
        except DBusError as exc:
            raise BluetoothError(f"cannot set {name} on {self.name}: {exc.text or exc.type}") from exc

    async def trust(self, device: DeviceView) -> None:
        """Mark a host Trusted: that is what makes a paired device one of voxkey's bonded hosts (``devices``)."""
        try:
            await bluez.set_property(self.require_bus(), device.path, bluez.DEVICE, "Trusted", Variant("b", True))
            device.trusted = True
        except DBusError as exc:
            log.warning("bluetooth: cannot mark %s trusted: %s", device.address, exc.text)

    async def disconnect(self, device: DeviceView) -> None:
        """Drop a device's link; one that left meanwhile is no error (debug log only)."""
        try:
            await bluez.call(self.require_bus(), device.path, bluez.DEVICE, "Disconnect")
        except DBusError as exc:
            log.debug("bluetooth: disconnect %s: %s", device.address, exc.text)
