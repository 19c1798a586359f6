"""What every group of doctor checks shares: the config, where the kernel shows things, the result type."""

from __future__ import annotations

import grp
import os
import platform
import pwd
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voxkey.config import Config
from voxkey.errors import ConfigError

if TYPE_CHECKING:
    from voxkey.transports.bluetooth.hosts import BondedHost


def _bonded_hosts(adapter: str) -> list[BondedHost]:
    """BlueZ's bonded hosts (imported here: doctor must run where dbus-fast is missing)."""
    from voxkey.transports.bluetooth.hosts import list_hosts

    return list_hosts(adapter)


@dataclass(frozen=True)
class SystemPaths:
    """Where the kernel shows what the checks look at."""

    udc_class: Path = Path("/sys/class/udc")
    configfs: Path = Path("/sys/kernel/config")
    bluetooth_class: Path = Path("/sys/class/bluetooth")
    rfkill_class: Path = Path("/sys/class/rfkill")
    dev: Path = Path("/dev")
    boot_config: tuple[Path, ...] = (Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))
    device_tree_model: Path = Path("/proc/device-tree/model")
    bluetoothd_dropin: Path | None = None  # None: hostcompat.SINGLE_NOTIFICATIONS_DROPIN, which install.sh writes
    dpkg_status: Path = Path("/var/lib/dpkg/status")


@dataclass(frozen=True)
class HostPlatform:
    """What this Python runs on: the kernel's machine name and the userland's pointer size.

    Both matter: a 32-bit Raspberry Pi OS on a Pi 4 or 5 boots a 64-bit kernel (machine ``aarch64``)
    under a 32-bit userland, and only the userland decides which wheels pip can install.
    """

    machine: str
    pointer_bits: int

    @classmethod
    def current(cls) -> HostPlatform:
        return cls(platform.machine(), struct.calcsize("P") * 8)


SIXTY_FOUR_BIT_MACHINES = frozenset({"aarch64", "arm64", "armv8l", "x86_64", "amd64"})
"""Kernels that can run a 64-bit userland (``armv8l``: a 64-bit CPU reported to 32-bit code)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    used: bool = True


@dataclass
class CheckContext:
    """What a check looks at; each group of checks (``usb``, ``bluetooth``, ``gpio``, ``speech``) extends it."""

    config: Config
    config_error: ConfigError | None = None
    paths: SystemPaths = field(default_factory=SystemPaths)
    host: HostPlatform = field(default_factory=HostPlatform.current)
    bluetooth_hosts: Callable[[str], list[BondedHost]] = field(default=_bonded_hosts)

    @property
    def transport(self) -> str:
        return self.config.output.transport

    def uses_usb(self) -> bool:
        return self.transport in ("usb", "both")

    def uses_bluetooth(self) -> bool:
        return self.transport in ("bluetooth", "both")


def read_sysfs(path: Path) -> str | None:
    """A sysfs or config file's text, stripped; None where it does not exist or cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def access_result(name: str, device: Path, group: str, how: str) -> CheckResult:
    if os.access(device, os.R_OK | os.W_OK):
        return CheckResult(name, True, f"{device} is readable and writable")
    try:
        owner_group = grp.getgrgid(device.stat().st_gid).gr_name
    except (KeyError, OSError):
        owner_group = "?"
    return CheckResult(
        name,
        False,
        f"no read/write access to {device} (group {owner_group})",
        f"run as a member of group {group} (sudo usermod -aG {group} {current_user()}); check {how}",
    )
