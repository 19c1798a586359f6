"""The pairing agent: says yes to a new host only while pairing mode is on.

voxkey has a button and LEDs but no display or keypad, so it pairs with the
"NoInputNoOutput" capability: LE Secure Connections "Just Works" on hosts that
support it (all current iOS, Android, Windows, macOS, Linux), legacy Just
Works otherwise. The real gate is the adapter's Pairable flag, which is only
on in pairing mode (the kernel then refuses bonding outright); this agent is
the second gate for everything bluetoothd asks it, so a host that slips in
between (e.g. at the end of the timeout) is still turned away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dbus_fast import DBusError
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from voxkey.transports.bluetooth import bluez

log = logging.getLogger(__name__)

CAPABILITY = "NoInputNoOutput"


class PairingAgent(ServiceInterface):  # type: ignore[misc]
    """``org.bluez.Agent1``; ``pairing_allowed`` says whether pairing mode is on right now."""

    def __init__(
        self,
        path: str,
        pairing_allowed: Callable[[], bool],
        is_known_host: Callable[[str], bool],
        on_cancel: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(bluez.AGENT)
        self.path = path
        self._pairing_allowed = pairing_allowed
        self._is_known_host = is_known_host
        self._on_cancel = on_cancel

    def _require_pairing_mode(self, device: str, what: str) -> None:
        if not self._pairing_allowed():
            log.warning("bluetooth: refused %s from %s: not in pairing mode", what, device)
            raise DBusError(bluez.ERROR_REJECTED, "voxkey is not in pairing mode; long-press its button first")
        log.info("bluetooth: accepting %s from %s (pairing mode)", what, device)

    @dbus_method()
    def Release(self) -> bluez.DBusNone:
        log.debug("bluetooth: agent released by bluetoothd")

    @dbus_method()
    def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:
        raise DBusError(bluez.ERROR_REJECTED, "voxkey cannot enter a PIN")

    @dbus_method()
    def DisplayPinCode(self, device: DBusObjectPath, pincode: DBusStr) -> bluez.DBusNone:
        raise DBusError(bluez.ERROR_REJECTED, "voxkey cannot display a PIN")

    @dbus_method()
    def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        raise DBusError(bluez.ERROR_REJECTED, "voxkey cannot enter a passkey")

    @dbus_method()
    def DisplayPasskey(self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16) -> bluez.DBusNone:
        return None

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> bluez.DBusNone:
        self._require_pairing_mode(device, "pairing")

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> bluez.DBusNone:
        self._require_pairing_mode(device, "pairing")

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> bluez.DBusNone:
        if self._is_known_host(device):
            return
        self._require_pairing_mode(device, f"service {uuid}")

    @dbus_method()
    def Cancel(self) -> bluez.DBusNone:
        log.info("bluetooth: pairing cancelled by the host")
        self._on_cancel()
