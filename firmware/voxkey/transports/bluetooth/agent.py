"""The pairing agent: says yes to a new host only while pairing mode is on, and enters the passkey.

Two ways to pair (``bluetooth.pairing``):

* ``passkey`` (the default): IO capability "KeyboardOnly". The host shows a
  six-digit passkey, the user *says* it, and voxkey enters it
  (``RequestPasskey``, answered from ``passkey_source``): LE Secure
  Connections with MITM protection, an authenticated bond. A host that offers
  only Just Works (no display) reaches ``RequestAuthorization`` instead, and
  is refused: an attacker cannot downgrade the pairing by claiming to have no
  display.
* ``just_works``: "NoInputNoOutput": LE Secure Connections "Just Works" on hosts
  that support it, legacy Just Works otherwise; unauthenticated, for hosts
  that cannot show a code.

The real gate is the adapter's Pairable flag, which is only on in pairing mode
(the kernel then refuses bonding outright); this agent is the second gate for
everything bluetoothd asks it, so a host that slips in between (e.g. at the
end of the timeout) is still turned away.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Literal

from dbus_fast import DBusError
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from voxkey.transports.bluetooth import bluez

log = logging.getLogger(__name__)

PairingMethod = Literal["passkey", "just_works"]
CAPABILITIES: dict[str, str] = {"passkey": "KeyboardOnly", "just_works": "NoInputNoOutput"}
"""The IO capability voxkey registers for each ``bluetooth.pairing`` method."""

PasskeySource = Callable[[str], "concurrent.futures.Future[str]"]
"""Asked for the passkey a host shows (device path in); the future resolves to its six digits.

It is called on the Bluetooth thread and must not block; the agent cancels the
future when BlueZ cancels the request (the host gave up, or its time ran out)."""


class PairingAgent(ServiceInterface):  # type: ignore[misc]
    """``org.bluez.Agent1``; ``pairing_allowed`` says whether pairing mode is on right now."""

    def __init__(
        self,
        path: str,
        pairing_allowed: Callable[[], bool],
        is_known_host: Callable[[str], bool],
        on_cancel: Callable[[], None] = lambda: None,
        method: PairingMethod = "just_works",
    ) -> None:
        super().__init__(bluez.AGENT)
        self.path = path
        self.method = method
        self.passkey_source: PasskeySource | None = None
        """Where the passkey comes from (the daemon: the user's voice); None refuses passkey entry."""
        self._pairing_allowed = pairing_allowed
        self._is_known_host = is_known_host
        self._on_cancel = on_cancel
        self._pending: concurrent.futures.Future[str] | None = None

    @property
    def capability(self) -> str:
        return CAPABILITIES[self.method]

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
    async def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        """The host shows a passkey: wait for the user to say it (BlueZ waits, the host's time runs)."""
        if self.method != "passkey":
            raise DBusError(bluez.ERROR_REJECTED, "voxkey pairs with Just Works (bluetooth.pairing)")
        self._require_pairing_mode(device, "passkey entry")
        source = self.passkey_source
        if source is None:
            log.warning("bluetooth: %s asked for a passkey, but nothing here can enter one", device)
            raise DBusError(
                bluez.ERROR_REJECTED,
                "voxkey cannot take a passkey here: pair from the running daemon (long press, then say the code) "
                "or set bluetooth.pairing: just_works",
            )
        future = source(device)
        self._pending = future
        try:
            passkey = await asyncio.wrap_future(future)
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            raise DBusError(bluez.ERROR_CANCELED, "passkey entry cancelled") from None
        finally:
            if self._pending is future:
                self._pending = None
        log.info("bluetooth: entering the passkey for %s", device)
        return int(passkey)

    @dbus_method()
    def DisplayPasskey(self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16) -> bluez.DBusNone:
        return None

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> bluez.DBusNone:
        self._require_unauthenticated_allowed(device)
        self._require_pairing_mode(device, "pairing")

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> bluez.DBusNone:
        """Just Works asks this of a keyboard that has IO: refused in passkey mode (no downgrade)."""
        self._require_unauthenticated_allowed(device)
        self._require_pairing_mode(device, "pairing")

    def _require_unauthenticated_allowed(self, device: str) -> None:
        if self.method == "passkey":
            log.warning("bluetooth: refused pairing without a passkey from %s (bluetooth.pairing: passkey)", device)
            raise DBusError(
                bluez.ERROR_REJECTED,
                "voxkey pairs only with a passkey; a host that cannot show one needs bluetooth.pairing: just_works",
            )

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> bluez.DBusNone:
        if self._is_known_host(device):
            return
        self._require_pairing_mode(device, f"service {uuid}")

    @dbus_method()
    def Cancel(self) -> bluez.DBusNone:
        log.info("bluetooth: pairing cancelled by the host")
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        self._on_cancel()
