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

import grp
import os
import platform
import pwd
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxkey.config import Config
from voxkey.errors import BluetoothError, ConfigError, ModelError
from voxkey.models import OFFICIAL_MODELS, find_model, model_name_from_path, verify_model

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
class Doctor:
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

    def check_model(self) -> CheckResult:
        name = self.config.asr.model
        try:
            path = find_model(name)
        except ModelError as exc:
            return CheckResult("model", False, str(exc), _model_fix(name, None))
        status = verify_model(path)
        if not status.ok:
            return CheckResult("model", False, f"{path}: {status.detail}", _model_fix(name, path))
        if not os.access(path, os.R_OK):
            return CheckResult("model", False, f"{path} is not readable", f"chmod a+r {path}")
        return CheckResult("model", True, f"{path} ({status.verdict}: {status.detail})")

    def check_audio(self) -> CheckResult:
        wanted = self.config.audio.device
        try:
            import sounddevice as sd

            devices = sd.query_devices()
        except (OSError, ImportError) as exc:
            return CheckResult("audio", False, f"PortAudio is not usable: {exc}", "sudo apt install libportaudio2")
        inputs = [(i, str(d["name"])) for i, d in enumerate(devices) if d["max_input_channels"] > 0]
        if not inputs:
            return CheckResult(
                "audio",
                False,
                "no microphone found",
                "plug in a USB microphone or set up the HAT (hardware/microphones.md); check with arecord -l",
            )
        names = ", ".join(name for _, name in inputs)
        if wanted is None or wanted == "":
            return CheckResult("audio", True, f"default input; microphones: {names}")
        if isinstance(wanted, int) or str(wanted).isdigit():
            index = int(wanted)
            match = [name for i, name in inputs if i == index]
        else:
            match = [name for _, name in inputs if str(wanted).lower() in name.lower()]
        if not match:
            return CheckResult(
                "audio", False, f"audio.device {wanted!r} matches no microphone (have: {names})", "fix audio.device"
            )
        return CheckResult("audio", True, f"audio.device {wanted!r} → {match[0]}")

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
        state = _read(self.paths.udc_class / udc / "state") or "unknown"
        detail = f"{udc}, state {state}"
        if state != "configured":
            detail += " (no host has enumerated the keyboard: plug the OTG port into a computer)"
        return CheckResult("usb controller", True, detail)

    def _dwc2_fix(self) -> str:
        for config_txt in self.paths.boot_config:
            text = _read(config_txt)
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
        bound = _read(gadget / "UDC")
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
        return _access_result("keyboard device", device, "voxkey", "the udev rule /etc/udev/rules.d/70-voxkey.rules")

    def check_uinput(self) -> CheckResult:
        if self.transport != "uinput":
            return CheckResult("/dev/uinput", True, "not used (transport is not uinput)", used=False)
        device = self.paths.dev / "uinput"
        if not device.exists():
            return CheckResult("/dev/uinput", False, f"{device} does not exist", "sudo modprobe uinput")
        return _access_result("/dev/uinput", device, "input", "sudo setfacl -m u:$USER:rw /dev/uinput")

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
            if _read(rfkill / "type") == "bluetooth" and _read(rfkill / "soft") == "1":
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

    def check_gpio(self) -> CheckResult:
        if self.config.button.source != "gpio" and self.config.leds.kind == "none":
            return CheckResult("gpio", True, "not used (terminal button, no LED)", used=False)
        chips = sorted(self.paths.dev.glob("gpiochip*"))
        if not chips:
            return CheckResult(
                "gpio",
                False,
                f"no GPIO chip in {self.paths.dev}",
                "run voxkey on a Raspberry Pi, or use button.source terminal",
            )
        denied = [str(chip) for chip in chips if not os.access(chip, os.R_OK | os.W_OK)]
        if denied:
            return CheckResult(
                "gpio",
                False,
                f"no read/write access to {', '.join(denied)}",
                f"sudo usermod -aG gpio {_user()} and log in again (the service user is in group gpio)",
            )
        pins = [str(self.config.button.pin)]
        if self.config.button.cancel_pin is not None:
            pins.append(str(self.config.button.cancel_pin))
        return CheckResult(
            "gpio", True, f"{', '.join(c.name for c in chips)} accessible; button on GPIO {', '.join(pins)}"
        )

    def check_pin_factory(self) -> CheckResult:
        """Which gpiozero backend drives the pins (active, or the one gpiozero would pick), and whether it
        opens the button's pins.

        A Pi 5's GPIO needs lgpio; without it gpiozero falls back to backends that fail only when a pin is
        used, so the daemon would stop at start. Opening the pins now finds that before a press does.
        """
        if self.config.button.source != "gpio":
            return CheckResult("gpio pins", True, "not used (terminal button)", used=False)
        factory, active, fallbacks = _pin_factory()
        if factory is None:
            return CheckResult(
                "gpio pins", False, f"no gpiozero pin factory works ({'; '.join(fallbacks)})", self._lgpio_fix()
            )
        try:
            name = f"{_factory_name(factory)} ({'active' if active else 'would be used'})"
            if fallbacks:
                name += f", after {'; '.join(fallbacks)}"
            return self._open_button_pins(factory, name)
        finally:
            if not active:
                factory.close()

    def _open_button_pins(self, factory: Any, name: str) -> CheckResult:
        button = self.config.button
        pins = [button.pin] if button.cancel_pin is None else [button.pin, button.cancel_pin]
        in_use: list[str] = []
        for pin in pins:
            problem = _open_input(factory, pin, button.pull_up)
            if problem is None:
                continue
            if _is_in_use(problem):
                in_use.append(f"GPIO {pin}")
                continue
            fix = "check button.pin and button.cancel_pin (BCM numbers: hardware/wiring.md)"
            if self._is_pi5() and _factory_name(factory) != "lgpio":
                fix = self._lgpio_fix()
            return CheckResult(
                "gpio pins",
                False,
                f"pin factory {name}: cannot open GPIO {pin}: {type(problem).__name__}: {problem}",
                fix,
            )
        opened = [f"GPIO {pin}" for pin in pins if f"GPIO {pin}" not in in_use]
        detail = f"pin factory {name}"
        if opened:
            detail += f"; button pins open: {', '.join(opened)}"
        if in_use:
            detail += (
                f"; in use: {', '.join(in_use)} (the running voxkey service holds its button; "
                "if it is stopped, gpioinfo names the holder)"
            )
        return CheckResult("gpio pins", True, detail)

    def check_spi(self) -> CheckResult:
        """The SPI device the APA102 LEDs (``leds.kind: apa102``) are written through."""
        if self.config.leds.kind != "apa102":
            return CheckResult("spi", True, "not used (leds.kind is not apa102)", used=False)
        apa102 = self.config.leds.apa102
        if not apa102.uses_spi:
            return CheckResult("spi", True, "not used (the APA102 LEDs are on GPIO pins)", used=False)
        device = self.paths.dev / f"spidev{apa102.spi_bus}.{apa102.spi_device}"
        if not device.exists():
            return CheckResult(
                "spi",
                False,
                f"{device} does not exist (SPI is off, or leds.apa102.spi_bus/spi_device is wrong)",
                "add dtparam=spi=on to config.txt and reboot (install.sh does this for apa102)",
            )
        return _access_result("spi", device, "spi", "that a udev rule gives /dev/spidev* to group spi")

    def check_remote_privacy(self) -> CheckResult:
        """asr.remote sends audio off the device: say where, and warn when it leaves the LAN or is unencrypted."""
        from voxkey.remote.network import privacy_findings

        remote = self.config.asr.remote
        if not remote.enabled:
            return CheckResult("speech server", True, "asr.remote off: speech stays on this device", used=False)
        found = privacy_findings(remote)
        return CheckResult("speech server privacy", found.ok, found.detail, found.fix)

    def check_remote_server(self) -> CheckResult:
        from voxkey.remote.clients import client_for
        from voxkey.remote.network import reachability

        remote = self.config.asr.remote
        if not remote.enabled:
            return CheckResult("speech server reachable", True, "asr.remote off", used=False)
        found = reachability(client_for(remote).probe, remote.timeout_s)
        return CheckResult("speech server reachable", found.ok, found.detail, found.fix)

    def _is_pi5(self) -> bool:
        """The Pi 5 family (Pi 5, Pi 500, Compute Module 5): its GPIO is on the RP1 chip, which only lgpio drives."""
        model = _read_model(self.paths.device_tree_model)
        return model.startswith(("Raspberry Pi 5", "Raspberry Pi Compute Module 5"))

    def _lgpio_fix(self) -> str:
        if self._is_pi5():
            return (
                "a Pi 5 needs lgpio: sudo apt install python3-lgpio (Raspberry Pi OS's archive has it; install.sh "
                "installs it), then sudo systemctl restart voxkey"
            )
        return "install a gpiozero pin backend: sudo apt install python3-lgpio (or python3-rpi-lgpio / RPi.GPIO)"


PIN_FACTORY_NAMES = {
    "LGPIOFactory": "lgpio",
    "RPiGPIOFactory": "rpigpio",
    "PiGPIOFactory": "pigpio",
    "NativeFactory": "native",
    "MockFactory": "mock",
}


def _factory_name(factory: Any) -> str:
    """gpiozero's own name for the factory (what GPIOZERO_PIN_FACTORY takes)."""
    cls_name = type(factory).__name__
    return PIN_FACTORY_NAMES.get(cls_name, cls_name)


def _pin_factory() -> tuple[Any, bool, list[str]]:
    """(factory, whether it is the active one, why gpiozero fell back from the ones it tried first).

    The active factory is gpiozero's ``Device.pin_factory``; without one, the factory gpiozero would pick
    (``GPIOZERO_PIN_FACTORY``, else lgpio, rpigpio, pigpio, native) is made for this check only and not
    installed, so the doctor changes nothing in gpiozero's state.
    """
    try:
        from gpiozero import Device
    except ImportError as exc:
        return None, False, [f"gpiozero is not installed: {exc}"]
    if Device.pin_factory is not None:
        return Device.pin_factory, True, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            factory = Device._default_pin_factory()
        except Exception as exc:  # gpiozero raises many unrelated classes for one cause
            return None, False, [*_messages(caught), f"{type(exc).__name__}: {exc}"]
    return factory, False, _messages(caught)


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message).rstrip(".") for w in caught]


def _open_input(factory: Any, pin: int | str, pull_up: bool) -> Exception | None:
    """Open PIN as the daemon's button does (an input with the configured pull) and release it at once."""
    from gpiozero import InputDevice

    try:
        device = InputDevice(pin, pull_up=pull_up, pin_factory=factory)
    except Exception as exc:  # gpiozero and its backends raise many unrelated classes
        return exc
    device.close()
    return None


def _is_in_use(problem: Exception) -> bool:
    """Held by another device of this process (gpiozero) or by another process (the backend says busy)."""
    from gpiozero.exc import GPIOPinInUse

    return isinstance(problem, GPIOPinInUse) or "busy" in str(problem).lower()


def _read_model(path: Path) -> str:
    """The device tree's model string ends in a NUL byte."""
    try:
        return path.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
    except OSError:
        return ""


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _access_result(name: str, device: Path, group: str, how: str) -> CheckResult:
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
        f"run as a member of group {group} (sudo usermod -aG {group} {_user()}); check {how}",
    )


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


def _model_fix(name: str, path: Path | None) -> str:
    """The command that replaces a missing or damaged model.

    ``asr.model`` may be a path (``/data/ggml-tiny.en-q5_1.bin``) or a name that is no official model; a
    ``voxkey models download`` of that text would fail. A damaged file is replaced where it lies
    (``--dir``): downloaded anywhere else, the damaged copy would still be found first.
    """
    if path is None:
        return f"voxkey models download {name}"
    official = model_name_from_path(path)
    if official not in OFFICIAL_MODELS:
        return f"replace {path} with an intact copy (it is not an official model voxkey can download)"
    return f"voxkey models download {official} --dir {path.parent}"
