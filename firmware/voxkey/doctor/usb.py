"""Doctor checks of the USB keyboard: device controller, configfs gadget, /dev/hidg0, and /dev/uinput."""

from __future__ import annotations

from voxkey.doctor.base import CheckContext, CheckResult, access_result, read_sysfs


class UsbChecks(CheckContext):
    def check_udc(self) -> CheckResult:
        if not self.uses_usb():
            return CheckResult("usb controller", True, "not used (transport is not usb)", used=False)
        controllers = sorted(p.name for p in self.paths.udc_class.glob("*")) if self.paths.udc_class.is_dir() else []
        if not controllers:
            return CheckResult(
                "usb controller",
                False,
                f"no USB device controller in {self.paths.udc_class}",
                self._dwc2_fix(),
            )
        wanted = self.config.usb.udc
        if wanted and wanted not in controllers:
            return CheckResult(
                "usb controller", False, f"usb.udc {wanted!r} not found (have: {', '.join(controllers)})", "fix usb.udc"
            )
        udc = wanted or controllers[0]
        state = read_sysfs(self.paths.udc_class / udc / "state") or "unknown"
        detail = f"{udc}, state {state}"
        if state != "configured":
            detail += " (no host has enumerated the keyboard: plug the OTG port into a computer)"
        return CheckResult("usb controller", True, detail)

    def _dwc2_fix(self) -> str:
        for config_txt in self.paths.boot_config:
            text = read_sysfs(config_txt)
            if text is not None:
                if "dtoverlay=dwc2" in text:
                    return f"dtoverlay=dwc2 is in {config_txt}: reboot, and use the OTG/USB-C data port"
                return f"add dtoverlay=dwc2,dr_mode=peripheral to {config_txt} and reboot (install.sh does this)"
        return "this board has no USB device controller; use a Pi Zero 2 W, 4 or 5, or transport bluetooth"

    def check_gadget(self) -> CheckResult:
        if not self.uses_usb():
            return CheckResult("usb gadget", True, "not used (transport is not usb)", used=False)
        gadget = self.paths.configfs / "usb_gadget" / "voxkey"
        if not (self.paths.configfs / "usb_gadget").is_dir():
            return CheckResult(
                "usb gadget",
                False,
                f"{self.paths.configfs}/usb_gadget is missing (libcomposite not loaded)",
                "sudo modprobe libcomposite; install.sh loads it at boot from /etc/modules-load.d/voxkey.conf",
            )
        if not gadget.is_dir():
            return CheckResult("usb gadget", False, f"{gadget} does not exist", "sudo systemctl start voxkey-gadget")
        bound = read_sysfs(gadget / "UDC")
        if not bound:
            return CheckResult("usb gadget", False, f"{gadget} is not bound to a controller", "sudo voxkey-gadget up")
        return CheckResult("usb gadget", True, f"bound to {bound}")

    def check_hidg(self) -> CheckResult:
        if not self.uses_usb():
            return CheckResult("keyboard device", True, "not used (transport is not usb)", used=False)
        device = self.config.usb.device
        if not device.exists():
            return CheckResult(
                "keyboard device",
                False,
                f"{device} does not exist",
                "sudo systemctl start voxkey-gadget (voxkey-gadget up)",
            )
        return access_result("keyboard device", device, "voxkey", "the udev rule /etc/udev/rules.d/70-voxkey.rules")

    def check_uinput(self) -> CheckResult:
        if self.transport != "uinput":
            return CheckResult("/dev/uinput", True, "not used (transport is not uinput)", used=False)
        device = self.paths.dev / "uinput"
        if not device.exists():
            return CheckResult("/dev/uinput", False, f"{device} does not exist", "sudo modprobe uinput")
        return access_result("/dev/uinput", device, "input", "sudo setfacl -m u:$USER:rw /dev/uinput")
