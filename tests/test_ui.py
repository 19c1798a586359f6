"""Buttons and status light on gpiozero's MockFactory pins, and the terminal stand-in for the button."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from voxkey.config import ButtonSettings, LedSettings, RgbPins
from voxkey.errors import HardwareError
from voxkey.ui import PATTERNS, ButtonEdge, GpioButtons, LightState, StatusLight, TerminalButtons


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
