"""The LE advertisement: how hosts find voxkey (pairing mode) and find it again (bonded hosts).

A keyboard advertises as connectable with the keyboard appearance (0x03C1) and
the HID service UUID, which is what makes iOS/Android list it as a keyboard.
Only in pairing mode is it *general discoverable*: outside it, hosts browsing
for new devices do not list voxkey, while bonded hosts (which look for its
address, or resolve it with the bond's IRK) still connect.
"""

from __future__ import annotations

from typing import Annotated

from dbus_fast import Variant
from dbus_fast.annotations import DBusBool, DBusSignature, DBusStr, DBusUInt16
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from voxkey.transports.bluetooth import bluez

DBusStrList = Annotated[list[str], DBusSignature("as")]


class Advertisement(ServiceInterface):  # type: ignore[misc]
    """``org.bluez.LEAdvertisement1`` for ``LEAdvertisingManager1.RegisterAdvertisement``."""

    def __init__(self, path: str, name: str, discoverable: bool) -> None:
        super().__init__(bluez.ADVERTISEMENT)
        self.path = path
        self.name = name
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
        return self.name

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
            "LocalName": Variant("s", self.name),
            "Discoverable": Variant("b", self.discoverable),
        }
