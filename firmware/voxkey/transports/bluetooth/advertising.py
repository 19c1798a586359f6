"""The LE advertisement: how hosts find voxkey (pairing mode) and find it again (bonded hosts).

A keyboard advertises as connectable with the keyboard appearance (0x03C1) and
the HID service UUID, which is what makes iOS/Android list it as a keyboard.
Only in pairing mode is it *general discoverable*: outside it, hosts browsing
for new devices do not list voxkey, while bonded hosts (which look for its
address, or resolve it with the bond's IRK) still connect.

``Advertiser`` keeps at most one advertisement registered with BlueZ and
answers BlueZ's questions about it; the policy says when to advertise and how.
"""

from __future__ import annotations

import logging
from typing import Annotated

from dbus_fast import DBusError, Message, MessageType, Variant
from dbus_fast.annotations import DBusBool, DBusSignature, DBusStr, DBusUInt16
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.adapter import AdapterSession

log = logging.getLogger(__name__)

ADVERTISEMENT_PATH = "/org/voxkey/advertisement0"

DBusStrList = Annotated[list[str], DBusSignature("as")]


class Advertisement(ServiceInterface):  # type: ignore[misc]
    """``org.bluez.LEAdvertisement1`` for ``LEAdvertisingManager1.RegisterAdvertisement``."""

    def __init__(self, path: str, local_name: str, discoverable: bool) -> None:
        super().__init__(bluez.ADVERTISEMENT)
        self.path = path
        self.local_name = local_name
        """Not ``name``: that is dbus-fast's interface name, which routes BlueZ's ``Release`` here."""
        self.discoverable = discoverable
        self.released = False

    @dbus_method()
    def Release(self) -> bluez.DBusNone:
        """BlueZ dropped the advertisement (adapter reset, bluetoothd stopping)."""
        self.released = True

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> DBusStrList:
        return [bluez.HID_SERVICE]

    @dbus_property(access=PropertyAccess.READ)
    def Appearance(self) -> DBusUInt16:
        return bluez.APPEARANCE_KEYBOARD

    @dbus_property(access=PropertyAccess.READ)
    def LocalName(self) -> DBusStr:
        return self.local_name

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return self.discoverable

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> DBusStrList:
        return []

    def properties(self) -> dict[str, Variant]:
        return {
            "Type": Variant("s", "peripheral"),
            "ServiceUUIDs": Variant("as", [bluez.HID_SERVICE]),
            "Appearance": Variant("q", bluez.APPEARANCE_KEYBOARD),
            "LocalName": Variant("s", self.local_name),
            "Discoverable": Variant("b", self.discoverable),
        }


BLUETOOTHD_GONE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")
"""The bus's answer to a call for a unique name whose process left (bluetoothd restarting)."""


class Advertiser:
    """The one advertisement voxkey has registered on its adapter, if any; runs on the peripheral's loop."""

    def __init__(self, session: AdapterSession, name: str) -> None:
        self.session = session
        self.name = name
        self.current: Advertisement | None = None
        """Registered with BlueZ (None also after bluetoothd restarted: it forgot it)."""
        self._pending: Advertisement | None = None
        """Being registered: BlueZ reads its properties before ``RegisterAdvertisement`` returns."""

    def forget(self) -> None:
        """bluetoothd left the bus and took the registration with it; the next ``set`` registers anew.

        The object leaves the bus too: exported twice on one path, dbus-fast refuses the new one, and an
        idle keyboard whose bluetoothd restarted never advertised again.
        """
        current, self.current = self.current, None
        if current is not None and self.session.bus is not None:
            self.session.bus.unexport(current.path, current)

    async def set(self, discoverable: bool | None) -> None:
        """Advertise (general discoverable or not), or stop advertising with None."""
        bus = self.session.bus
        current = self.current
        owner = self.session.owner
        if current is not None and (discoverable is None or current.discoverable != discoverable):
            self.current = None
            if bus is not None:
                if owner is not None:
                    try:
                        await bluez.call(
                            bus,
                            self.session.path,
                            bluez.ADVERTISING_MANAGER,
                            "UnregisterAdvertisement",
                            "o",
                            [current.path],
                            destination=owner,
                        )
                    except DBusError as exc:
                        log.debug("bluetooth: unregister advertisement: %s", exc.text)
                bus.unexport(current.path, current)
        if discoverable is None or self.current is not None or bus is None:
            return
        if owner is None:
            log.debug("bluetooth: not advertising: bluetoothd does not hold the keyboard yet")
            return
        advertisement = Advertisement(ADVERTISEMENT_PATH, self.name, discoverable)
        bus.export(advertisement.path, advertisement)
        self._pending = advertisement
        try:
            await bluez.call(
                bus,
                self.session.path,
                bluez.ADVERTISING_MANAGER,
                "RegisterAdvertisement",
                "oa{sv}",
                [advertisement.path, {}],
                destination=owner,
            )
        except DBusError as exc:
            bus.unexport(advertisement.path, advertisement)
            # Refused because the radio went off, or the bluetoothd it went to left, meanwhile: it is
            # registered again when power returns or once the keyboard is registered with the next one.
            gone = exc.type in BLUETOOTHD_GONE or self.session.owner != owner
            expected = gone or not self.session.powered
            report = log.debug if expected else log.error
            report("bluetooth: BlueZ refused the advertisement: %s", exc.text or exc.type)
            return
        finally:
            self._pending = None
        self.current = advertisement
        log.debug("bluetooth: advertising (%s)", "discoverable" if discoverable else "bonded hosts only")

    def answer_object_manager(self, message: Message) -> Message | None:
        """Answer BlueZ's ``GetManagedObjects`` on the advertisement's own path (a bus message handler).

        bluetoothd reads an advertisement's properties that way, and expects the
        object itself in the answer; dbus-fast's built-in handler lists only the
        objects *below* a path, which made BlueZ advertise an empty, non-connectable
        set. A message handler runs before the built-in one.
        """
        advertisement = self._pending or self.current
        if (
            message.message_type != MessageType.METHOD_CALL
            or message.interface != bluez.OBJECT_MANAGER
            or message.member != "GetManagedObjects"
            or advertisement is None
            or message.path != advertisement.path
        ):
            return None
        objects = {advertisement.path: {bluez.ADVERTISEMENT: advertisement.properties()}}
        return Message.new_method_return(message, "a{oa{sa{sv}}}", [objects])
