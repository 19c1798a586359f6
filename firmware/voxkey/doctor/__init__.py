"""``voxkey doctor``: every reason the keyboard might not work, each with what to do about it.

A check looks at the system the way the daemon would use it (the same config,
the same device paths) but never takes anything over: it does not open the
microphone stream or bind the gadget, and it claims the button's GPIO lines only
for a moment (an input, as the daemon opens it), reporting a line the running
service holds as in use rather than failing, so it is safe to run while the
service is running. Checks that do not apply to the configured transport or
button are reported as "not used" instead of failing.

Kernel and device paths come from ``SystemPaths`` so tests can point them at
a temporary tree shaped like sysfs and /dev.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voxkey.config import Config
from voxkey.doctor.base import SIXTY_FOUR_BIT_MACHINES, CheckResult, HostPlatform, SystemPaths
from voxkey.doctor.bluetooth import BluetoothChecks
from voxkey.doctor.gpio import GpioChecks
from voxkey.doctor.speech import SpeechChecks
from voxkey.doctor.usb import UsbChecks
from voxkey.errors import ConfigError

__all__ = ["CheckResult", "Doctor", "HostPlatform", "SystemPaths", "format_results", "run_checks"]


@dataclass
class Doctor(SpeechChecks, UsbChecks, BluetoothChecks, GpioChecks):
    """Every check, in the order ``voxkey doctor`` prints them; each group lives in its own module."""

    def checks(self) -> list[Callable[[], CheckResult]]:
        return [
            self.check_config,
            self.check_architecture,
            self.check_model,
            self.check_audio,
            self.check_udc,
            self.check_gadget,
            self.check_hidg,
            self.check_uinput,
            self.check_bluetooth,
            self.check_bluetooth_hosts,
            self.check_old_hosts_bluetoothd,
            self.check_gpio,
            self.check_pin_factory,
            self.check_spi,
            self.check_remote_privacy,
            self.check_remote_server,
        ]

    def run(self) -> list[CheckResult]:
        results = []
        for check in self.checks():
            try:
                results.append(check())
            except Exception as exc:  # a check that crashes is a finding too, not a reason to stop
                name = check.__name__.removeprefix("check_")
                results.append(CheckResult(name, False, f"check failed: {exc}", "report this as a voxkey bug"))
        return results

    # --- individual checks ----------------------------------------------------------------------

    def check_config(self) -> CheckResult:
        if self.config_error is not None:
            return CheckResult("config", False, str(self.config_error), "edit the file at the line shown")
        where = self.config.source or "built-in defaults (no config file)"
        return CheckResult("config", True, f"{where}: valid")

    def check_architecture(self) -> CheckResult:
        """pywhispercpp, voxkey's speech recognition, has wheels for 64-bit ARM and x86 only."""
        host = self.host
        if host.pointer_bits >= 64:
            return CheckResult("architecture", True, f"64-bit ({host.machine})")
        where = "on a 64-bit kernel, " if host.machine in SIXTY_FOUR_BIT_MACHINES else ""
        detail = (
            f"32-bit OS ({where}{host.machine}, {host.pointer_bits}-bit Python): pywhispercpp, voxkey's speech "
            "recognition, has no build for it"
        )
        if host.machine.startswith("armv6"):
            fix = "this Pi (ARMv6: Pi 1, Zero, Zero W) cannot run a 64-bit OS: use a Pi Zero 2 W, 3, 4 or 5"
        else:
            fix = (
                "install Raspberry Pi OS (64-bit) with Raspberry Pi Imager (every Pi from the 3 and the Zero 2 W on "
                "runs it), then install.sh again"
            )
        return CheckResult("architecture", False, detail, fix)


def run_checks(
    config: Config,
    config_error: ConfigError | None = None,
    paths: SystemPaths | None = None,
    host: HostPlatform | None = None,
) -> list[CheckResult]:
    return Doctor(config, config_error, paths or SystemPaths(), host or HostPlatform.current()).run()


def format_results(results: list[CheckResult]) -> str:
    """One line per check; failures get a second line saying what to do."""
    lines = []
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        if not result.used:
            mark = "--  "
        lines.append(f"{mark} {result.name}: {result.detail}")
        if not result.ok and result.fix:
            lines.append(f"     fix: {result.fix}")
    failed = sum(1 for r in results if not r.ok)
    lines.append("all checks passed" if not failed else f"{failed} problem{'s' if failed > 1 else ''} found")
    return "\n".join(lines)
