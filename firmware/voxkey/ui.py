"""The physical interface: button edges in, light patterns out.

This module reports *what the hand did* (press/release with the time it
happened) and shows *what the daemon says*; it decides nothing. The gestures
are interpreted by ``voxkey.gestures``, the only place that knows whether a
press means "start", "stop", "undo" or "cancel"; which light shows when is
``voxkey.status``'s:

=================  =========================================================
gesture            meaning
=================  =========================================================
hold mode          press = start listening, release = stop and type
toggle mode        press = start, next press = stop and type
auto mode          press = start; stops after ``auto_silence_s`` of silence
                   following speech (or at the next press)
tap, tap           two presses shorter than ``audio.min_recording_ms`` within ``double_press_s``
                   (toggle/auto: two presses within ``double_press_s``):
                   undo — Backspace exactly the characters the last dictation typed
press after stop   a press within ``double_press_s`` after a dictation stopped,
                   before its text is typed: cancel it, nothing is typed
tap, tap, tap      (``eject_gesture: triple-tap``, hold mode) the media key Eject, which
                   brings back an iPad's on-screen keyboard; tap, tap then undoes
                   only after ``double_press_s`` without a third tap
cancel button      (optional ``cancel_pin``) cancel the recording in progress; with
                   ``eject_gesture: cancel-button``, Eject when there is nothing to cancel
long press         held ≥ ``long_press_s`` and nothing was said: Bluetooth pairing
                   mode (a press leaves it)
text waiting       (LED text-waiting, ``voxkey.kept``) a press types the held text
                   into the host now there; two presses within ``double_press_s``
                   (or the cancel button) drop it
=================  =========================================================

Light patterns (``PATTERNS``), distinct on a single LED; an RGB LED, or a mic HAT's APA102/DotStar LEDs
(``leds.kind: apa102``, all of them the same colour), adds colour:

=================  ===================================  ========
state              single LED                           RGB
=================  ===================================  ========
idle               off (PWM/RGB: faint glow)            green
on-device          idle, speech server down: a 0.05 s   yellow
                   flash every 3 s (PWM/RGB: glow)
listening          steady on                            red
transcribing       blink 0.15 s on / 0.15 s off          cyan
typing             flicker 0.03 s on / 0.05 s off        green
waiting-for-host   slow blink 1 s / 1 s                 yellow
pairing            double blink, pause                  blue
say-code           on 0.7 s / off 0.15 s: a host shows  blue
                   a pairing code, say its six digits
code-retry (once)  three 0.25 s blinks: the code was    yellow
                   not understood, say it again
text-waiting       long, short blink, pause: kept text  orange
                   held for a tap (double press drops)
error              three fast blinks, pause             red
limit (one-shot)   five very fast flashes: max length   magenta
cancelled (once)   0.4 s on, then off                   white
undo (one-shot)    two short blinks                     white
=================  ===================================  ========

A terminal cannot report key releases, so on a PC (``button.source:
terminal``) the space bar (or Enter) presses the button and the next one
releases it; ``u`` is a double tap (undo), ``p`` a long press (pairing),
``c``/Esc the cancel button, ``q`` quits.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import select
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from voxkey.config import Apa102Settings, ButtonSettings, LedSettings
from voxkey.errors import HardwareError, VoxkeyError

log = logging.getLogger(__name__)

ButtonName = Literal["main", "cancel"]
EdgeKind = Literal["press", "release"]


@dataclass(frozen=True)
class ButtonEdge:
    """A press or release of one button at ``at`` (``time.monotonic()`` seconds)."""

    kind: EdgeKind
    at: float
    button: ButtonName = "main"


EdgeHandler = Callable[[ButtonEdge], None]


class Buttons(Protocol):
    """A source of button edges; ``close`` stops it."""

    def close(self) -> None: ...


def _gpio_error(what: str, pin: int | str, exc: Exception) -> HardwareError:
    return HardwareError(
        f"cannot use GPIO {pin} for the {what} ({type(exc).__name__}: {exc}); check the pin in the config and "
        "that voxkey's user is in group 'gpio' (run 'voxkey doctor')"
    )


class GpioButtons:
    """The main button and the optional cancel button on GPIO pins (gpiozero)."""

    def __init__(self, settings: ButtonSettings, on_edge: EdgeHandler) -> None:
        from gpiozero import Button

        self.on_edge = on_edge
        self._buttons: list[Any] = []
        bounce = settings.bounce_s or None
        pins: list[tuple[ButtonName, int | str]] = [("main", settings.pin)]
        if settings.cancel_pin is not None:
            pins.append(("cancel", settings.cancel_pin))
        for name, pin in pins:
            try:
                button = Button(pin, pull_up=settings.pull_up, bounce_time=bounce)
            except Exception as exc:  # gpiozero raises many unrelated classes for one cause
                self.close()
                raise _gpio_error(f"{name} button", pin, exc) from exc
            button.when_pressed = self._edge_handler("press", name)
            button.when_released = self._edge_handler("release", name)
            self._buttons.append(button)

    def _edge_handler(self, kind: EdgeKind, name: ButtonName) -> Callable[[], None]:
        def handle() -> None:
            self.on_edge(ButtonEdge(kind, time.monotonic(), name))

        return handle

    def close(self) -> None:
        for button in self._buttons:
            button.close()
        self._buttons.clear()


class TerminalButtons:
    """Keys of the controlling terminal stand in for the button on a PC (see module docstring)."""

    PRESS_KEYS = frozenset(" \r\n")
    CANCEL_KEYS = frozenset("cC\x1b")

    def __init__(
        self,
        settings: ButtonSettings,
        on_edge: EdgeHandler,
        on_quit: Callable[[], None],
        stream: int | None = None,
    ) -> None:
        self.settings = settings
        self.on_edge = on_edge
        self.on_quit = on_quit
        self.fd = sys.stdin.fileno() if stream is None else stream
        self._held = False
        self._saved: list[Any] | None = None
        self._stop_r, self._stop_w = os.pipe()
        if os.isatty(self.fd):
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        self._thread = threading.Thread(target=self._read_keys, name="voxkey-terminal-button", daemon=True)
        self._thread.start()

    @staticmethod
    def hint(settings: ButtonSettings) -> str:
        action = "start/stop" if settings.mode != "hold" else "press, then again to release"
        return f"voxkey: space = button ({action}), u = undo, c = cancel, p = pairing, q = quit"

    def _read_keys(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:
                self.on_quit()
                return
            for key in data.decode(errors="replace"):
                self._key(key)

    def _key(self, key: str) -> None:
        now = time.monotonic()
        if key in self.PRESS_KEYS:
            self._held = not self._held
            self.on_edge(ButtonEdge("press" if self._held else "release", now))
        elif key in "uU":
            tap = 0.02  # far shorter than any audio.min_recording_ms: two taps, not dictations
            for i, kind in enumerate(("press", "release", "press", "release")):
                self.on_edge(ButtonEdge(kind, now + i * tap))  # type: ignore[arg-type]
        elif key in "pP":
            self.on_edge(ButtonEdge("press", now))
            self.on_edge(ButtonEdge("release", now + self.settings.long_press_s))
        elif key in self.CANCEL_KEYS:
            self.on_edge(ButtonEdge("press", now, "cancel"))
            self.on_edge(ButtonEdge("release", now, "cancel"))
        elif key in "qQ\x04":
            self.on_quit()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        self._thread.join(timeout=1)
        if self._saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_buttons(settings: ButtonSettings, on_edge: EdgeHandler, on_quit: Callable[[], None]) -> Buttons:
    """GPIO buttons on a Pi, terminal keys on a PC (``button.source``)."""
    if settings.source == "terminal":
        if not os.isatty(sys.stdin.fileno()):
            raise VoxkeyError("button.source is terminal but standard input is not a terminal; use --audio-file")
        print(TerminalButtons.hint(settings), file=sys.stderr)
        return TerminalButtons(settings, on_edge, on_quit)
    return GpioButtons(settings, on_edge)


class LightState(enum.Enum):
    IDLE = "idle"
    ON_DEVICE = "on-device"  # idle, but asr.remote's server is down: speech is transcribed on the Pi
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    TYPING = "typing"
    WAITING_FOR_HOST = "waiting-for-host"
    PAIRING = "pairing"
    SAY_CODE = "say-code"  # a host shows a pairing code: press, say its digits, release
    CODE_RETRY = "code-retry"  # one-shot: the code was not six digits, say it again
    ERROR = "error"
    LIMIT = "limit"
    CANCELLED = "cancelled"
    UNDO = "undo"
    TEXT_WAITING = "text-waiting"  # kept text held for a tap (voxkey.kept)


Step = tuple[float, float]
"""(brightness 0..1, seconds); a single LED is on when brightness ≥ 0.5."""

FOREVER = float("inf")
HISTORY_LENGTH = 1000
RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
CYAN, YELLOW, MAGENTA, WHITE = (0.0, 1.0, 1.0), (1.0, 0.8, 0.0), (1.0, 0.0, 1.0), (1.0, 1.0, 1.0)
ORANGE = (1.0, 0.4, 0.0)


@dataclass(frozen=True)
class Pattern:
    """What the light does in one state: ``steps`` repeat unless ``once``."""

    steps: tuple[Step, ...]
    color: tuple[float, float, float]
    once: bool = False


PATTERNS: dict[LightState, Pattern] = {
    LightState.IDLE: Pattern(((0.05, FOREVER),), GREEN),
    LightState.ON_DEVICE: Pattern(((1.0, 0.05), (0.05, 2.95)), YELLOW),
    LightState.LISTENING: Pattern(((1.0, FOREVER),), RED),
    LightState.TRANSCRIBING: Pattern(((1.0, 0.15), (0.0, 0.15)), CYAN),
    LightState.TYPING: Pattern(((1.0, 0.03), (0.0, 0.05)), GREEN),
    LightState.WAITING_FOR_HOST: Pattern(((1.0, 1.0), (0.0, 1.0)), YELLOW),
    LightState.PAIRING: Pattern(((1.0, 0.1), (0.0, 0.1), (1.0, 0.1), (0.0, 0.7)), BLUE),
    LightState.SAY_CODE: Pattern(((1.0, 0.7), (0.0, 0.15)), BLUE),
    LightState.CODE_RETRY: Pattern(((1.0, 0.25), (0.0, 0.15)) * 3, YELLOW, once=True),
    LightState.ERROR: Pattern(((1.0, 0.08), (0.0, 0.08)) * 3 + ((0.0, 0.6),), RED),
    LightState.LIMIT: Pattern(((1.0, 0.05), (0.0, 0.05)) * 5, MAGENTA, once=True),
    LightState.CANCELLED: Pattern(((1.0, 0.4), (0.0, 0.2)), WHITE, once=True),
    LightState.UNDO: Pattern(((1.0, 0.05), (0.0, 0.1)) * 2, WHITE, once=True),
    LightState.TEXT_WAITING: Pattern(((1.0, 0.6), (0.0, 0.2), (1.0, 0.2), (0.0, 1.0)), ORANGE),
}
"""The documented patterns (module docstring); tests check states against this table."""


class SpiWriter(Protocol):
    """What the APA102 LEDs need of an SPI device: spidev's ``SpiDev`` has these."""

    def writebytes2(self, data: bytes) -> None: ...

    def close(self) -> None: ...


SpiOpener = Callable[[Apa102Settings], SpiWriter]

APA102_SPI_HZ = 4_000_000
"""Far below the LEDs' limit (~20 MHz), for the HATs' traces; a frame for three LEDs (136 bits) still takes ~35 µs."""


def open_spidev(settings: Apa102Settings) -> SpiWriter:
    """``/dev/spidev<bus>.<device>`` through spidev, imported only here: only apa102 needs it."""
    device = f"/dev/spidev{settings.spi_bus}.{settings.spi_device}"
    try:
        import spidev
    except ImportError as exc:
        raise HardwareError(
            f"leds.kind apa102 needs the Python module spidev ({exc}): run install.sh again (it installs it for "
            "apa102), or pip install spidev"
        ) from exc
    spi = spidev.SpiDev()
    try:
        spi.open(settings.spi_bus, settings.spi_device)
        spi.mode = 0
        spi.max_speed_hz = APA102_SPI_HZ
    except OSError as exc:
        spi.close()
        raise HardwareError(
            f"cannot open {device} for the APA102 LEDs ({exc}); SPI must be on: dtparam=spi=on in config.txt and a "
            "reboot (install.sh does this for apa102), and voxkey's user in group spi; run 'voxkey doctor'"
        ) from exc
    return spi  # type: ignore[no-any-return]


class GpioSpiWriter:
    """SPI clocked out on two GPIO outputs, for APA102 LEDs wired to pins without an SPI controller (the
    Adafruit Voice Bonnet's: data GPIO5, clock GPIO6).

    Mode 0, most significant bit first: the data line is set while the clock is low, and the LEDs read
    it on the clock's rising edge. Through gpiozero a bit costs a few pin writes in Python, far slower
    than SPI, but a frame for three LEDs is only 136 bits (not measured on a Pi).
    """

    def __init__(self, clock_pin: int | str, data_pin: int | str) -> None:
        from gpiozero import DigitalOutputDevice

        self._clock = DigitalOutputDevice(clock_pin)
        try:
            self._data = DigitalOutputDevice(data_pin)
        except Exception:
            self._clock.close()
            raise

    def writebytes2(self, data: bytes) -> None:
        clock, mosi = self._clock, self._data
        for byte in data:
            for shift in range(7, -1, -1):
                mosi.value = (byte >> shift) & 1
                clock.on()
                clock.off()

    def close(self) -> None:
        self._clock.close()
        self._data.close()


def open_apa102_writer(settings: Apa102Settings) -> SpiWriter:
    """The SPI device the settings name, or the two GPIO pins standing in for one."""
    if settings.uses_spi:
        return open_spidev(settings)
    assert settings.clock_pin is not None and settings.data_pin is not None  # config checks they go together
    try:
        return GpioSpiWriter(settings.clock_pin, settings.data_pin)
    except Exception as exc:  # gpiozero raises many unrelated classes for one cause
        pins = f"{settings.clock_pin}, {settings.data_pin}"
        raise _gpio_error("APA102 LEDs (clock, data)", pins, exc) from exc


class Apa102Leds:
    """APA102/DotStar LEDs on SPI (or two GPIO pins standing in), all showing one colour (``value``: red,
    green, blue in 0..1).

    Each update is one SPI write of the whole chain (APA102 datasheet): a start frame of 32 zero bits;
    per LED ``0b111`` and the 5-bit global brightness, then blue, green, red; an end frame of one bits,
    at least half a bit per LED because each LED passes the clock on half a cycle late. The end frame
    is whole bytes of ones, ceil(count / 16) of them: shorter than an LED frame (32 bits) for up to 48
    LEDs, so an LED further down the chain than ``count`` never latches it as full white.
    """

    def __init__(self, settings: Apa102Settings, brightness: float, spi: SpiWriter) -> None:
        self.count = settings.count
        self.global_brightness = max(1, round(31 * brightness))
        self._spi = spi
        self._value = (0.0, 0.0, 0.0)
        try:
            self.value = (0.0, 0.0, 0.0)  # dark until the first state: the LEDs keep whatever they showed
        except Exception:
            spi.close()
            raise

    def frame(self, color: tuple[float, float, float]) -> bytes:
        red, green, blue = (round(255 * min(max(c, 0.0), 1.0)) for c in color)
        led = bytes((0xE0 | self.global_brightness, blue, green, red))
        return bytes(4) + led * self.count + b"\xff" * ((self.count + 15) // 16)

    @property
    def value(self) -> tuple[float, float, float]:
        return self._value

    @value.setter
    def value(self, color: tuple[float, float, float]) -> None:
        self._spi.writebytes2(self.frame(color))
        self._value = color

    def close(self) -> None:
        """Dark, then the SPI device released: the LEDs keep their last frame otherwise."""
        try:
            self.value = (0.0, 0.0, 0.0)
        finally:
            self._spi.close()


class StatusLight:
    """Plays the pattern of the current state on the configured LED, from one background thread.

    ``show`` sets the lasting state; ``flash`` plays a one-shot pattern over it.
    ``history`` records the last ``HISTORY_LENGTH`` states shown, in order (what a user would have seen),
    bounded so a daemon running for months does not grow.
    """

    def __init__(self, settings: LedSettings, open_spi: SpiOpener = open_apa102_writer) -> None:
        self.settings = settings
        self.history: deque[LightState] = deque(maxlen=HISTORY_LENGTH)
        self._device = self._open_device(settings, open_spi)
        self._state = LightState.IDLE
        self._overlay: LightState | None = None
        self._generation = 0
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="voxkey-light", daemon=True)
        self._thread.start()

    @staticmethod
    def _open_device(settings: LedSettings, open_spi: SpiOpener) -> Any:
        if settings.kind == "none":
            return None
        if settings.kind == "apa102":
            try:
                return Apa102Leds(settings.apa102, settings.brightness, open_spi(settings.apa102))
            except OSError as exc:
                raise HardwareError(f"cannot write to the APA102 LEDs ({exc}); run 'voxkey doctor'") from exc
        from gpiozero import LED, PWMLED, RGBLED

        pins: Sequence[int | str] = (
            (settings.rgb.red, settings.rgb.green, settings.rgb.blue) if settings.kind == "rgb" else (settings.pin,)
        )
        try:
            if settings.kind == "rgb":
                return RGBLED(*pins, active_high=settings.active_high)
            if settings.kind == "pwm":
                return PWMLED(pins[0], active_high=settings.active_high)
            return LED(pins[0], active_high=settings.active_high)
        except Exception as exc:  # gpiozero raises many unrelated classes for one cause
            raise _gpio_error("status LED", ", ".join(map(str, pins)), exc) from exc

    @property
    def state(self) -> LightState:
        return self._state

    def show(self, state: LightState) -> None:
        with self._changed:
            if state == self._state:
                return
            self._state = state
            if self._overlay is None:  # a one-shot flash plays to its end, then this state shows
                self._generation += 1
            self.history.append(state)
            self._changed.notify_all()

    def flash(self, state: LightState) -> None:
        with self._changed:
            self._overlay = state
            self._generation += 1
            self.history.append(state)
            self._changed.notify_all()

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                generation = self._generation
                pattern = PATTERNS[self._overlay or self._state]
                for level, seconds in pattern.steps:
                    self._set(level, pattern.color)
                    timeout = None if seconds == FOREVER else seconds
                    if self._changed.wait_for(partial(self._interrupted, generation), timeout):
                        break
                else:
                    if pattern.once:
                        self._overlay = None
            self._set(0.0, (0.0, 0.0, 0.0))

    def _interrupted(self, generation: int) -> bool:
        return self._closed or self._generation != generation

    def _set(self, level: float, color: tuple[float, float, float]) -> None:
        device = self._device
        if device is None:
            return
        kind = self.settings.kind
        scaled = level * self.settings.brightness
        try:
            if kind == "rgb":
                device.value = tuple(c * scaled for c in color)
            elif kind == "apa102":  # brightness is the LEDs' own 5-bit global brightness
                device.value = tuple(c * level for c in color)
            elif kind == "pwm":
                device.value = scaled
            else:
                device.value = 1 if level >= 0.5 else 0
        except Exception as exc:  # a vanished pin must not kill the light thread
            log.debug("status light: %s", exc)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout=2)
        if self._device is not None:
            self._device.close()
            self._device = None
