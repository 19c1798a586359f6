"""Doctor checks of Bluetooth: the adapter, rfkill, D-Bus, bonded hosts whose stack drops key reports, and the
bluetoothd built for those hosts (``install.sh --bluetoothd-for-old-hosts``)."""

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

    def check_old_hosts_bluetoothd(self) -> CheckResult:
        """The bluetoothd rebuilt with single notifications, if installed, must match the installed BlueZ.

        An upgrade of the ``bluez`` package leaves the rebuilt daemon at the old version (and without the
        upgrade's fixes) until ``install.sh --bluetoothd-for-old-hosts`` runs again.
        """
        name = "bluetoothd for old hosts"
        if not self.uses_bluetooth():
            return CheckResult(name, True, "not used (transport is not bluetooth)", used=False)
        from voxkey.transports.bluetooth.hostcompat import single_notifications_bluetoothd  # only when used

        binary = single_notifications_bluetoothd(self.paths.bluetoothd_dropin)
        if binary is None:
            return CheckResult(name, True, "not installed: hosts with BlueZ 5.55-5.66 are refused", used=False)
        stamp = read_sysfs(binary.with_name(binary.name + ".built-from")) or ""
        built = stamp.split(";")[0].removeprefix("bluez ").split(" from ")[0]
        installed = _package_version(self.paths.dpkg_status, "bluez")
        fix = "sudo ./install.sh --bluetoothd-for-old-hosts"
        if not built:
            return CheckResult(name, False, f"{binary} does not say what it was built from", fix)
        if installed is not None and installed != built:
            return CheckResult(name, False, f"{binary} is BlueZ {built}, but the bluez package is {installed}", fix)
        return CheckResult(name, True, f"{binary} (BlueZ {built}, single notifications)")


def _package_version(status: Path, package: str) -> str | None:
    """An installed package's version from dpkg's status file; None where there is none (not Debian)."""
    try:
        stanzas = status.read_text(encoding="utf-8", errors="replace").split("\n\n")
    except OSError:
        return None
    for stanza in stanzas:
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Package") == package and "installed" in fields.get("Status", "").split():
            return fields.get("Version")
    return None
