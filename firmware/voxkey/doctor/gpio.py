"""Doctor checks of the button and LEDs: GPIO chips, gpiozero's pin factory and the button's pins, SPI."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from voxkey.doctor.base import CheckContext, CheckResult, access_result, current_user


class GpioChecks(CheckContext):
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
                f"sudo usermod -aG gpio {current_user()} and log in again (the service user is in group gpio)",
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
        return access_result("spi", device, "spi", "that a udev rule gives /dev/spidev* to group spi")

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
