"""Buttons and status light on gpiozero's MockFactory pins, and the terminal stand-in for the button."""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from voxkey.config import Apa102Settings, ButtonSettings, LedSettings, RgbPins
from voxkey.errors import HardwareError
from voxkey.ui import (
    PATTERNS,
    Apa102Leds,
    ButtonEdge,
    GpioButtons,
    GpioSpiWriter,
    LightState,
    StatusLight,
    TerminalButtons,
)


def wait_until(condition: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def test_button_edges_with_pull_up(pins: MockFactory) -> None:
    edges: list[ButtonEdge] = []
    buttons = GpioButtons(ButtonSettings(pin=17, cancel_pin=22, bounce_s=0), edges.append)
    try:
        main, cancel = pins.pin(17), pins.pin(22)
        before = time.monotonic()
        main.drive_low()
        main.drive_high()
        cancel.drive_low()
        cancel.drive_high()
        assert [(e.kind, e.button) for e in edges] == [
            ("press", "main"),
            ("release", "main"),
            ("press", "cancel"),
            ("release", "cancel"),
        ]
        assert all(before <= e.at <= time.monotonic() for e in edges)
    finally:
        buttons.close()


def test_button_without_pull_up_is_active_high(pins: MockFactory) -> None:
    edges: list[ButtonEdge] = []
    buttons = GpioButtons(ButtonSettings(pin=5, pull_up=False, bounce_s=0), edges.append)
    try:
        pins.pin(5).drive_high()
        pins.pin(5).drive_low()
        assert [e.kind for e in edges] == ["press", "release"]
    finally:
        buttons.close()


def test_unusable_pin_is_a_hardware_error(pins: MockFactory) -> None:
    with pytest.raises(HardwareError, match="GPIO 99"):
        GpioButtons(ButtonSettings(pin=99), lambda edge: None)


def test_pin_in_use_is_a_hardware_error(pins: MockFactory) -> None:
    light = StatusLight(LedSettings(kind="led", pin=17))
    try:
        with pytest.raises(HardwareError, match="voxkey doctor"):
            GpioButtons(ButtonSettings(pin=17), lambda edge: None)
    finally:
        light.close()


def sample(pin: Any, seconds: float) -> set[float]:
    seen: set[float] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(round(float(pin.state), 3))
        time.sleep(0.002)
    return seen


def test_single_led_patterns(pins: MockFactory) -> None:
    light = StatusLight(LedSettings(kind="led", pin=27))
    pin = pins.pin(27)
    try:
        assert wait_until(lambda: pin.state == 0)  # idle: off on a plain LED
        light.show(LightState.LISTENING)
        assert wait_until(lambda: pin.state == 1)
        assert sample(pin, 0.3) == {1}  # steady on
        light.show(LightState.TRANSCRIBING)
        assert sample(pin, 0.8) == {0, 1}  # blinking
        light.show(LightState.IDLE)
        assert wait_until(lambda: pin.state == 0)
        assert sample(pin, 0.3) == {0}
        assert list(light.history) == [LightState.LISTENING, LightState.TRANSCRIBING, LightState.IDLE]
    finally:
        light.close()
    assert light.state is LightState.IDLE


def test_one_shot_flash_returns_to_the_state(pins: MockFactory) -> None:
    light = StatusLight(LedSettings(kind="led", pin=27))
    pin = pins.pin(27)
    try:
        light.show(LightState.LISTENING)
        assert wait_until(lambda: pin.state == 1)
        light.flash(LightState.LIMIT)  # five quick flashes, 0.5 s in all
        assert sample(pin, 0.3) == {0, 1}
        light.show(LightState.TRANSCRIBING)  # the flash is not cut short by a state change...
        time.sleep(0.4)
        assert sample(pin, 0.8) == {0, 1}  # ...and the new state follows it
        assert list(light.history) == [LightState.LISTENING, LightState.LIMIT, LightState.TRANSCRIBING]
    finally:
        light.close()


def test_pwm_led_dims_when_idle(pins: MockFactory) -> None:
    light = StatusLight(LedSettings(kind="pwm", pin=18, brightness=0.5))
    pin = pins.pin(18)
    try:
        assert wait_until(lambda: abs(pin.state - 0.025) < 1e-6)  # faint glow x brightness
        light.show(LightState.LISTENING)
        assert wait_until(lambda: abs(pin.state - 0.5) < 1e-6)
    finally:
        light.close()


def test_rgb_led_colours(pins: MockFactory) -> None:
    light = StatusLight(LedSettings(kind="rgb", rgb=RgbPins(red=5, green=6, blue=13)))
    red, green, blue = pins.pin(5), pins.pin(6), pins.pin(13)
    try:
        light.show(LightState.LISTENING)
        assert wait_until(lambda: (red.state, green.state, blue.state) == (1, 0, 0))
        light.show(LightState.PAIRING)
        assert wait_until(lambda: (red.state, green.state, blue.state) == (0, 0, 1))
    finally:
        light.close()
    assert (red.state, green.state, blue.state) == (0, 0, 0)


def test_no_led_configured_still_records_states() -> None:
    light = StatusLight(LedSettings(kind="none"))
    try:
        light.show(LightState.TYPING)
        assert light.state is LightState.TYPING
        assert list(light.history) == [LightState.TYPING]
    finally:
        light.close()


class FakeSpi:
    """An SPI device that keeps every write, so the APA102 frames can be checked byte by byte."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def writebytes2(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True


START = b"\x00\x00\x00\x00"


def test_apa102_frame_is_start_then_brightness_blue_green_red_per_led_then_ones() -> None:
    spi = FakeSpi()
    leds = Apa102Leds(Apa102Settings(count=3), brightness=0.5, spi=spi)
    assert spi.writes == [START + bytes([0xF0, 0, 0, 0]) * 3 + b"\xff"]  # dark at once: 0xE0 | round(15.5)
    leds.value = (1.0, 0.8, 0.0)  # yellow
    assert spi.writes[-1] == bytes(
        [0x00, 0x00, 0x00, 0x00, 0xF0, 0, 204, 255, 0xF0, 0, 204, 255, 0xF0, 0, 204, 255, 0xFF]
    )
    leds.value = (0.0, 0.05, 0.0)  # the idle glow, green
    assert spi.writes[-1] == START + bytes([0xF0, 0, 13, 0]) * 3 + b"\xff"
    leds.close()
    assert spi.writes[-1] == START + bytes([0xF0, 0, 0, 0]) * 3 + b"\xff" and spi.closed


@pytest.mark.parametrize(("count", "end_bytes"), [(1, 1), (3, 1), (16, 1), (17, 2), (48, 3), (49, 4)])
def test_apa102_end_frame_has_half_a_bit_per_led_and_never_a_whole_led_frame(count: int, end_bytes: int) -> None:
    spi = FakeSpi()
    Apa102Leds(Apa102Settings(count=count), brightness=1.0, spi=spi).value = (0.0, 0.0, 1.0)
    frame = spi.writes[-1]
    assert frame[:4] == START
    assert frame[4 : 4 + 4 * count] == bytes([0xFF, 255, 0, 0]) * count  # brightness 31, blue
    end = frame[4 + 4 * count :]
    assert end == b"\xff" * end_bytes
    assert len(end) * 8 >= count / 2
    if count <= 48:
        assert len(end) < 4  # not a whole LED frame: an LED past the configured count stays dark


def test_apa102_brightness_is_the_5_bit_global_brightness() -> None:
    for brightness, header in [(1.0, 0xFF), (0.2, 0xE6), (0.01, 0xE1)]:  # never 0: that is dark
        spi = FakeSpi()
        Apa102Leds(Apa102Settings(count=1), brightness=brightness, spi=spi)
        assert spi.writes[-1][4] == header, brightness


def led_bytes(color: tuple[float, float, float], level: float = 1.0) -> bytes:
    red, green, blue = (round(255 * c * level) for c in color)
    return bytes([0xFF, blue, green, red])


def test_apa102_status_light_shows_the_rgb_led_colours() -> None:
    spi = FakeSpi()
    opened: list[Apa102Settings] = []

    def open_spi(settings: Apa102Settings) -> FakeSpi:
        opened.append(settings)
        return spi

    settings = LedSettings(kind="apa102", apa102=Apa102Settings(count=2, spi_bus=0, spi_device=1))
    light = StatusLight(settings, open_spi=open_spi)
    try:
        assert opened == [settings.apa102]
        idle = START + led_bytes(PATTERNS[LightState.IDLE].color, 0.05) * 2 + b"\xff"
        assert wait_until(lambda: spi.writes[-1] == idle)  # green glow
        for state in (LightState.LISTENING, LightState.TRANSCRIBING, LightState.WAITING_FOR_HOST, LightState.PAIRING):
            light.show(state)
            lit = START + led_bytes(PATTERNS[state].color) * 2 + b"\xff"
            assert wait_until(lambda lit=lit: spi.writes[-1] == lit), state  # type: ignore[misc]
    finally:
        light.close()
    assert spi.writes[-1] == START + bytes([0xFF, 0, 0, 0]) * 2 + b"\xff" and spi.closed
    listening = START + bytes([0xFF, 0, 0, 255]) * 2 + b"\xff"  # red, as on the RGB LED
    assert listening in spi.writes


def test_spidev_is_imported_only_for_apa102(pins: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)  # any import of spidev now fails
    StatusLight(LedSettings(kind="led", pin=27)).close()
    with pytest.raises(HardwareError, match=r"leds\.kind apa102 needs the Python module spidev"):
        StatusLight(LedSettings(kind="apa102"))


class BrokenSpi(FakeSpi):
    def writebytes2(self, data: bytes) -> None:
        raise OSError(5, "Input/output error")


def test_apa102_leds_that_cannot_be_written_are_a_hardware_error_and_release_the_device() -> None:
    spi = BrokenSpi()
    with pytest.raises(HardwareError, match="cannot write to the APA102 LEDs"):
        StatusLight(LedSettings(kind="apa102"), open_spi=lambda settings: spi)
    assert spi.closed


class FakeSpidevModule(types.ModuleType):
    """spidev's interface: SpiDev().open(bus, device), then mode and max_speed_hz."""

    def __init__(self, error: OSError | None = None) -> None:
        super().__init__("spidev")
        self.devices: list[Any] = []
        error_to_raise = error
        module = self

        class SpiDev(FakeSpi):
            def __init__(self) -> None:
                super().__init__()
                self.opened: tuple[int, int] | None = None
                self.mode = -1
                self.max_speed_hz = 0
                module.devices.append(self)

            def open(self, bus: int, device: int) -> None:
                if error_to_raise is not None:
                    raise error_to_raise
                self.opened = (bus, device)

        self.SpiDev = SpiDev


def test_apa102_opens_the_configured_spidev(monkeypatch: pytest.MonkeyPatch) -> None:
    module = FakeSpidevModule()
    monkeypatch.setitem(sys.modules, "spidev", module)
    light = StatusLight(LedSettings(kind="apa102", apa102=Apa102Settings(spi_bus=1, spi_device=2)))
    light.close()
    [device] = module.devices
    assert (device.opened, device.mode) == ((1, 2), 0) and 0 < device.max_speed_hz <= 20_000_000
    assert device.writes and device.closed


def test_apa102_without_spi_enabled_says_how_to_enable_it(monkeypatch: pytest.MonkeyPatch) -> None:
    module = FakeSpidevModule(FileNotFoundError(2, "No such file or directory"))
    monkeypatch.setitem(sys.modules, "spidev", module)
    with pytest.raises(HardwareError, match=r"cannot open /dev/spidev0\.0 for the APA102 LEDs .*dtparam=spi=on"):
        StatusLight(LedSettings(kind="apa102"))
    assert module.devices[0].closed


class Wire:
    """Every level change on the mock pins, in order across pins, as a logic analyser would see them."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, bool]] = []
        wire = self

        class RecordingPin(MockPin):
            def _change_state(self, value: bool) -> bool:
                changed = bool(super()._change_state(value))
                if changed:
                    wire.changes.append((self.info.name, value))
                return changed

        self.pin_class = RecordingPin

    def spi_bits(self, clock: str, data: str) -> list[int]:
        """SPI mode 0: the data line's level at each rising clock edge."""
        level, bits = False, []
        for name, value in list(self.changes):  # a copy: the light's thread may be writing
            if name == data:
                level = value
            elif name == clock and value:
                bits.append(int(level))
        return bits

    def spi_bytes(self, clock: str, data: str) -> bytes:
        """The whole bytes clocked out so far, most significant bit first."""
        bits = self.spi_bits(clock, data)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits) - 7, 8))


@pytest.fixture
def wire() -> Iterator[Wire]:
    recorder = Wire()
    factory = MockFactory(pin_class=recorder.pin_class)
    previous = Device.pin_factory
    Device.pin_factory = factory
    try:
        yield recorder
    finally:
        factory.reset()
        Device.pin_factory = previous


def test_gpio_spi_clocks_out_bytes_msb_first_on_the_rising_edge(wire: Wire) -> None:
    writer = GpioSpiWriter(clock_pin=6, data_pin=5)
    try:
        writer.writebytes2(bytes([0x00, 0xA6, 0xFF, 0x01]))
    finally:
        writer.close()
    assert len(wire.spi_bits(clock="GPIO6", data="GPIO5")) == 32
    assert wire.spi_bytes(clock="GPIO6", data="GPIO5") == bytes([0x00, 0xA6, 0xFF, 0x01])
    assert wire.changes[-1] == ("GPIO6", False)  # the clock rests low


def test_voice_bonnet_apa102_leds_on_gpio_pins(wire: Wire) -> None:
    settings = LedSettings(kind="apa102", brightness=1.0, apa102=Apa102Settings(count=3, clock_pin=6, data_pin=5))
    light = StatusLight(settings)
    try:
        light.show(LightState.PAIRING)
        blue = START + bytes([0xFF, 255, 0, 0]) * 3 + b"\xff"
        assert wait_until(lambda: blue in wire.spi_bytes(clock="GPIO6", data="GPIO5"))
    finally:
        light.close()
    dark = START + bytes([0xFF, 0, 0, 0]) * 3 + b"\xff"
    assert wire.spi_bytes(clock="GPIO6", data="GPIO5").endswith(dark)


def test_apa102_gpio_pins_that_cannot_be_used_are_a_hardware_error(pins: MockFactory) -> None:
    held = StatusLight(LedSettings(kind="led", pin=6))
    try:
        with pytest.raises(HardwareError, match="GPIO 6, 5 for the APA102 LEDs"):
            StatusLight(LedSettings(kind="apa102", apa102=Apa102Settings(clock_pin=6, data_pin=5)))
    finally:
        held.close()


def single_led_signature(state: LightState) -> tuple[tuple[bool, float], ...]:
    pattern = PATTERNS[state]
    steps = tuple((level >= 0.5, seconds) for level, seconds in pattern.steps)
    return (*steps, (pattern.once, 0.0))


def test_every_state_has_a_pattern_distinct_on_a_single_led() -> None:
    assert set(PATTERNS) == set(LightState)
    signatures = {single_led_signature(state) for state in LightState}
    assert len(signatures) == len(LightState)


def test_the_documented_table_lists_every_state() -> None:
    import voxkey.ui

    doc = voxkey.ui.__doc__ or ""
    for state in LightState:
        assert state.value in doc, state


class FakeKeys:
    """The terminal's input as a pipe: what the user types arrives as bytes, like from a tty."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def type(self, keys: str) -> None:
        os.write(self.write_fd, keys.encode())

    def close(self) -> None:
        os.close(self.write_fd)
        os.close(self.read_fd)


def test_terminal_keys_stand_in_for_the_button() -> None:
    keys = FakeKeys()
    edges: list[ButtonEdge] = []
    quit_pressed = threading.Event()
    settings = ButtonSettings(source="terminal", long_press_s=3.0)
    buttons = TerminalButtons(settings, edges.append, quit_pressed.set, stream=keys.read_fd)
    try:
        keys.type(" ")
        assert wait_until(lambda: len(edges) == 1)
        keys.type(" ")
        assert wait_until(lambda: len(edges) == 2)
        assert [e.kind for e in edges] == ["press", "release"]
        edges.clear()
        keys.type("u")
        assert wait_until(lambda: len(edges) == 4)
        assert [e.kind for e in edges] == ["press", "release", "press", "release"]
        assert edges[-1].at - edges[0].at < 0.3  # two quick taps
        edges.clear()
        keys.type("p")
        assert wait_until(lambda: len(edges) == 2)
        assert edges[1].at - edges[0].at == pytest.approx(3.0)  # a press held for long_press_s
        edges.clear()
        keys.type("c")
        assert wait_until(lambda: len(edges) == 2)
        assert {e.button for e in edges} == {"cancel"}
        keys.type("q")
        assert quit_pressed.wait(2)
    finally:
        buttons.close()
        keys.close()


def test_terminal_end_of_input_quits() -> None:
    keys = FakeKeys()
    quit_pressed = threading.Event()
    buttons = TerminalButtons(ButtonSettings(source="terminal"), lambda e: None, quit_pressed.set, stream=keys.read_fd)
    try:
        os.close(keys.write_fd)
        assert quit_pressed.wait(2)
    finally:
        buttons.close()
        os.close(keys.read_fd)
