"""Doctor checks of Bluetooth: the adapter, rfkill, D-Bus, and bonded hosts whose stack drops key reports."""

from __future__ import annotations

from pathlib import Path

from voxkey.doctor.base import CheckContext, CheckResult, read_sysfs
from voxkey.errors import BluetoothError


class BluetoothChecks(CheckContext):
    def check_bluetooth(self) -> CheckResult:
        if not self.uses_bluetooth():
            return CheckResult("bluetooth", True, "not used (transport is not bluetooth)", used=False)
        adapters = (
            sorted(p.name for p in self.paths.bluetooth_class.glob("hci*"))
            if self.paths.bluetooth_class.is_dir()
            else []
        )
        if not adapters:
            return CheckResult(
                "bluetooth",
                False,
                "no Bluetooth adapter (no hci device)",
                "enable it: remove dtoverlay=disable-bt from config.txt, or plug in a USB adapter",
            )
        for rfkill in sorted(self.paths.rfkill_class.glob("rfkill*")) if self.paths.rfkill_class.is_dir() else []:
            if read_sysfs(rfkill / "type") == "bluetooth" and read_sysfs(rfkill / "soft") == "1":
                return CheckResult(
                    "bluetooth", False, f"{adapters[0]} is blocked by rfkill", "sudo rfkill unblock bluetooth"
                )
        if not Path("/run/dbus/system_bus_socket").exists():
            return CheckResult(
                "bluetooth", False, "the system D-Bus is not running", "sudo systemctl start dbus bluetooth"
            )
        return CheckResult("bluetooth", True, f"adapter {', '.join(adapters)}")

    def check_bluetooth_hosts(self) -> CheckResult:
        """Bonded hosts whose BlueZ (5.55-5.66) drops every key report (``transports.bluetooth.hostcompat``)."""
        if not self.uses_bluetooth():
            return CheckResult("bluetooth hosts", True, "not used (transport is not bluetooth)", used=False)
        try:
            hosts = self.bluetooth_hosts(self.config.bluetooth.adapter)
        except BluetoothError as exc:
            return CheckResult("bluetooth hosts", False, str(exc), "sudo systemctl start bluetooth")
        broken = [host for host in hosts if host.problem]
        if broken:
            names = ", ".join(f"{host.address} ({host.name})" for host in broken)
            return CheckResult("bluetooth hosts", False, f"{names}: {broken[0].problem}", "update BlueZ on that host")
        return CheckResult("bluetooth hosts", True, f"{len(hosts)} bonded, none with a known-broken stack")
