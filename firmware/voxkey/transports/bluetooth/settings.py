"""What a Bluetooth keyboard needs to know before it starts, and the state it shows on its LEDs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from voxkey.errors import ConfigError

DEFAULT_PAIRING_TIMEOUT_S = 120.0


class BluetoothState(enum.Enum):
    """What the LEDs show: the user must be able to tell "pair me" from "where is my host"."""

    STARTING = "starting"
    PAIRING = "pairing"
    """Discoverable and pairable: a new host may bond now (long press or ``voxkey pair``)."""
    WAITING_FOR_HOST = "waiting-for-host"
    """Advertising for bonded hosts only; typed text is held until one connects and subscribes."""
    CONNECTED = "connected"
    """A bonded host is connected, encrypted and subscribed to key reports: typing goes through."""
    STOPPED = "stopped"


@dataclass(frozen=True)
class BluetoothSettings:
    """How the Bluetooth keyboard presents itself.

    ``preferred_host`` is a bonded host's address: while another host holds the
    connection voxkey keeps advertising, and when the preferred host connects it
    takes over (the other one is disconnected), so text goes where the user
    usually wants it.
    """

    name: str = "voxkey"
    """The name hosts list when they search for keyboards (1-29 bytes: it must fit in an advertisement)."""
    pairing: Literal["passkey", "just_works"] = "passkey"
    """How a new host pairs. ``passkey``: the host shows six digits and the user says them
    (press, speak, release as for dictation); the bond is LE Secure Connections with MITM
    protection, and a stranger in radio range cannot bond or sit in the middle. Every host
    that pairs Bluetooth keyboards (iOS/iPadOS, Android, Windows, macOS, GNOME, KDE,
    bluetoothctl) shows a passkey for one, which is why it is the default. ``just_works``:
    no code, an unauthenticated bond; only for a host that cannot show a code."""
    pairing_timeout_s: float = DEFAULT_PAIRING_TIMEOUT_S
    """How long pairing mode (long press, ``voxkey pair``) stays open for a new host."""
    preferred_host: str | None = None
    """A bonded host's address that takes the connection over from any other (see above)."""
    adapter: str = "hci0"
    """The BlueZ adapter (``hciconfig``/``bluetoothctl list``)."""
    report_window: int = 8
    """Key reports written but not yet acknowledged by the host's link layer (see ``link``)."""
    battery_level: int = 100
    """A mains-powered Pi has no battery; hosts still show a level, so it says "full"."""
    host_settle_s: float = 2.0
    """Pause between a host subscribing to key reports and the first key.

    A host subscribes before its keyboard exists: Linux's hog writes the CCCs,
    then reads the Report Map and creates the uhid device, and whoever reads
    keys (the desktop, the test's evdev reader) opens it later still. Keys sent
    in that gap reached the host's kernel before any reader and were lost (the
    first 4 characters in the guest). Tablets set up their keyboard after
    subscribing too.
    """

    def __post_init__(self) -> None:
        if not self.name or len(self.name.encode()) > 29:
            raise ConfigError(
                f"bluetooth name {self.name!r} must be 1-29 bytes long to fit in an advertisement", settings=("name",)
            )
        if self.pairing_timeout_s <= 0:
            raise ConfigError(
                "bluetooth pairing_timeout_s must be a positive number of seconds", settings=("pairing_timeout_s",)
            )
        if not 1 <= self.report_window <= 64:
            raise ConfigError("bluetooth report_window must be between 1 and 64", settings=("report_window",))
        if not 0 <= self.host_settle_s <= 30:
            raise ConfigError("bluetooth host_settle_s must be between 0 and 30 seconds", settings=("host_settle_s",))
        if not 0 <= self.battery_level <= 100:
            raise ConfigError("bluetooth battery_level must be between 0 and 100", settings=("battery_level",))
