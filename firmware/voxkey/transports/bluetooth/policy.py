"""Who may stay connected, whether to advertise, and what the LEDs say: the keyboard's rules, without BlueZ.

``PolicyEnforcer`` (``enforcer``) calls ``decide`` on every change to the
mirrored devices and carries out the decision over D-Bus. Keeping the rules
pure lets them be tested as a table, with no bus, loop or thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from voxkey.transports.bluetooth.devices import DeviceView
from voxkey.transports.bluetooth.settings import BluetoothState


@dataclass(frozen=True)
class Decision:
    bond: DeviceView | None = None
    """A host that just paired in pairing mode: trust it, end pairing mode, then decide again (nothing else now)."""
    strangers: tuple[DeviceView, ...] = ()
    """Connected devices that are not bonded hosts while voxkey is not pairing: disconnect them."""
    displaced: tuple[DeviceView, ...] = ()
    """Hosts that make way for the preferred host, which is connected too: disconnect them."""
    advertise: bool | None = None
    """Advertise as discoverable (True), for bonded hosts only (False), or not at all (None)."""
    state: BluetoothState = BluetoothState.WAITING_FOR_HOST
    ready: DeviceView | None = None
    """The host that may type now: connected, bonded, its services resolved, subscribed to key reports."""


def decide(
    devices: Sequence[DeviceView], *, pairing: bool, powered: bool, preferred: str | None, subscribed: bool
) -> Decision:
    """Apply the rules to one snapshot of the devices on our adapter.

    - In pairing mode, the first connected device that paired but is not yet
      Trusted is the new host: it is bonded, and that is all for this round.
    - Outside pairing mode every connected device that is not a bonded host
      is a stranger and goes.
    - When the preferred host is connected, every other connected device goes.
    - Advertise while pairing (discoverable), while no bonded host is connected,
      or while the preferred host is absent (bonded hosts only); never with the
      radio off, where BlueZ refuses advertisements.
    """
    connected = [device for device in devices if device.connected]
    if pairing:
        for device in connected:
            if device.paired and not device.trusted:
                return Decision(bond=device, state=BluetoothState.PAIRING)
    strangers = () if pairing else tuple(device for device in connected if not device.is_bonded_host)
    wanted = (preferred or "").upper()
    preferred_here = bool(wanted) and any(device.address.upper() == wanted for device in connected)
    displaced = tuple(device for device in connected if device.address.upper() != wanted) if preferred_here else ()
    hosts = [device for device in connected if device.is_bonded_host]
    ready = next((device for device in hosts if device.services_resolved), None) if subscribed else None
    want_ads = pairing or not hosts or bool(wanted and all(device.address.upper() != wanted for device in hosts))
    if pairing:
        state = BluetoothState.PAIRING
    elif ready is not None:
        state = BluetoothState.CONNECTED
    else:
        state = BluetoothState.WAITING_FOR_HOST
    return Decision(
        strangers=strangers,
        displaced=displaced,
        advertise=pairing if want_ads and powered else None,
        state=state,
        ready=ready,
    )
