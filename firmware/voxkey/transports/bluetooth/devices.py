"""One view of a remote device on our adapter, for the running keyboard and for ``voxkey hosts`` alike.

Both read BlueZ's ``Device1`` properties; they used to disagree on what a
bonded host is (``hosts.py`` ignored Trusted, which voxkey sets only on hosts
it bonded in pairing mode). ``DeviceView.is_bonded_host`` is the one rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.hostcompat import host_problem

log = logging.getLogger(__name__)


@dataclass
class DeviceView:
    """What we know about one remote device on our adapter (from BlueZ's Device1 properties)."""

    path: str
    address: str = ""
    name: str = ""
    connected: bool = False
    paired: bool = False
    bonded: bool | None = None
    """BlueZ ≥ 5.67 tells bonded (keys stored) apart from paired; older versions do not have it."""
    trusted: bool = False
    services_resolved: bool = False
    """BlueZ has the link's ATT bearer up (it discovered the host's own GATT services over it).

    ``Connected`` turns true with the bare link, before encryption and before
    BlueZ attaches its GATT server to it: notifications emitted then were
    silently dropped by bluetoothd (a reconnecting host keeps its subscription,
    so nothing else marks the moment), and the unacknowledged reports held the
    window shut for good.
    """
    modalias: str = ""
    """The host's PnP ID as BlueZ shows it (``usb:v1D6Bp0246d0542`` is BlueZ 5.66); see ``hostcompat``."""

    @property
    def is_bonded_host(self) -> bool:
        return self.paired and self.trusted and self.bonded is not False

    @property
    def problem(self) -> str | None:
        """Why this host cannot receive keys (``hostcompat.host_problem``), or None."""
        return host_problem(self.modalias)

    def update(self, props: dict[str, Any]) -> None:
        for key, attribute in (
            ("Address", "address"),
            ("Name", "name"),
            ("Connected", "connected"),
            ("Paired", "paired"),
            ("Bonded", "bonded"),
            ("Trusted", "trusted"),
            ("ServicesResolved", "services_resolved"),
            ("Modalias", "modalias"),
        ):
            if key in props:
                setattr(self, attribute, props[key])


def describe(changes: dict[str, Any]) -> str:
    """Device property changes for the debug log (large values such as ManufacturerData left out)."""
    return ", ".join(f"{key}={value}" for key, value in changes.items() if isinstance(value, (bool, int, str)))


def unwrap(props: dict[str, Any]) -> dict[str, Any]:
    """A property dict with its D-Bus variants replaced by their values."""
    return {key: bluez.plain(value) for key, value in props.items()}


def device_from(path: str, props: dict[str, Any]) -> DeviceView:
    plain = unwrap(props)
    device = DeviceView(path)
    device.update(plain)
    log.debug("bluetooth: device %s %s", device.address, describe(plain))
    return device
