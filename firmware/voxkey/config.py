"""The daemon's configuration: one YAML file → typed, validated dataclasses.

Every section is a dataclass with defaults, so an empty file is a working
(Raspberry Pi + USB) configuration and a user only writes what differs. The
speech, command and Bluetooth sections are defined next to the code they
configure, in modules that import nothing heavy (``voxkey.speech_settings``,
``voxkey.text.commands``, ``voxkey.transports.bluetooth.settings``); this module
only knows how to fill a dataclass from YAML.

Errors must point at the place to edit: YAML is composed into nodes first
(``yaml.compose`` keeps each node's line), and every wrong key or value becomes
a ``ConfigError`` whose message starts with ``file:line``.

The convention for a section: a ``frozen=True`` dataclass, a docstring under
every setting (``voxkey config defaults`` and the docs read from them), and the
rules that the types alone do not say checked in ``__post_init__``, which
raises ``_invalid(message, *settings)``: the reader turns the names of the
settings at fault into the lines where they are written.

So reading a config never imports numpy, webrtcvad, soxr, whisper or dbus-fast:
they were 0.14 s of the 0.30 s ``voxkey config check`` took on a PC (an
estimated half a second on a Pi Zero 2 W), and ``tests/test_imports.py`` keeps
them out. ``load_sections``
reads just the sections a command uses, so a mistake in, say, ``asr:`` does
not stop ``voxkey type``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import os
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from voxkey.errors import ConfigError
from voxkey.speech_settings import AsrSettings, AudioSettings, VadSettings
from voxkey.text.commands import CommandSettings
from voxkey.transports.bluetooth.settings import BluetoothSettings
from voxkey.typing_policy import UnsupportedPolicy

DEFAULT_PATH = Path("/etc/voxkey/config.yaml")
CONFIG_ENV = "VOXKEY_CONFIG"

TriggerMode = Literal["hold", "toggle", "auto"]
ButtonSource = Literal["gpio", "terminal"]
EjectGesture = Literal["off", "triple-tap", "cancel-button"]
LedKind = Literal["none", "led", "pwm", "rgb", "apa102"]
TransportName = Literal["usb", "bluetooth", "both", "terminal", "uinput"]


def _invalid(message: str, *settings: str) -> ConfigError:
    """A value a section cannot take; ``settings`` names the fields at fault, the one to change first.

    The config reader turns those names into the lines of the values, so an
    error found only when the whole section is known still points at the line
    to edit rather than at the section's first line.
    """
    return ConfigError(message, settings=settings)


def _positive(section: str, name: str, value: float) -> None:
    if value <= 0:
        raise _invalid(f"{section}.{name} must be greater than 0, not {value}", name)


@dataclass(frozen=True)
class ButtonSettings:
    """The push button and the gestures it understands (see ``voxkey.ui``)."""

    source: ButtonSource = "gpio"
    """``gpio`` on a Pi; ``terminal`` on a PC (the space bar is the button, see ``voxkey.ui``)."""
    pin: int | str = 17
    """The main button's GPIO (BCM number, or a gpiozero pin name such as ``"BOARD11"``)."""
    pull_up: bool = True
    """The button connects the pin to ground (the internal pull-up on); False: to 3.3 V."""
    bounce_s: float = 0.02
    """Edges closer than this are contact bounce (0: none filtered)."""
    mode: TriggerMode = "hold"
    """``hold``: talk while held; ``toggle``: press to start, press to stop; ``auto``: press, then silence stops."""
    double_press_s: float = 0.4
    """The window of two taps (undo) and of a press right after a dictation stopped (cancel)."""
    long_press_s: float = 3.0
    """Held this long with nothing said: Bluetooth pairing mode."""
    cancel_pin: int | str | None = None
    """An optional second button that cancels the dictation in progress."""
    cancel_by_press_after_stop: bool = True
    """Pressing again within ``double_press_s`` after a dictation stopped cancels it."""
    eject_gesture: EjectGesture = "off"
    """The gesture that sends the media key Eject, which brings back an iPad's on-screen keyboard:
    three taps (hold mode; two taps then wait ``double_press_s`` before undoing, for a third), or
    a press of the cancel button while there is nothing to cancel."""

    def __post_init__(self) -> None:
        for name in ("double_press_s", "long_press_s"):
            _positive("button", name, getattr(self, name))
        if self.bounce_s < 0:
            raise _invalid(f"button.bounce_s must be 0 or more, not {self.bounce_s}", "bounce_s")
        if self.cancel_pin is not None and self.cancel_pin == self.pin:
            raise _invalid(f"button.cancel_pin must differ from button.pin ({self.pin})", "cancel_pin", "pin")
        if self.eject_gesture == "triple-tap" and self.mode != "hold":
            raise _invalid(
                f"button.eject_gesture triple-tap needs mode hold (in {self.mode} mode a press starts listening)",
                "eject_gesture",
                "mode",
            )
        if self.eject_gesture == "cancel-button" and self.cancel_pin is None:
            raise _invalid("button.eject_gesture cancel-button needs a cancel_pin", "eject_gesture", "cancel_pin")


@dataclass(frozen=True)
class RgbPins:
    """The three GPIOs of an RGB LED (``leds.kind: rgb``)."""

    red: int | str = 5
    """GPIO of the red element."""
    green: int | str = 6
    """GPIO of the green element."""
    blue: int | str = 13
    """GPIO of the blue element."""

    def __post_init__(self) -> None:
        names = ("red", "green", "blue")
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                if getattr(self, first) == getattr(self, second):
                    pin = getattr(self, first)
                    raise _invalid(f"leds.rgb.{second} must differ from leds.rgb.{first} ({pin})", second, first)


@dataclass(frozen=True)
class Apa102Settings:
    """APA102/DotStar LEDs on SPI (``/dev/spidev<spi_bus>.<spi_device>``), as on the ReSpeaker 2-Mic HAT,
    or on two GPIO pins (``clock_pin``, ``data_pin``), as on the Adafruit Voice Bonnet (6 and 5), which
    are not SPI pins: all ``count`` LEDs show the state's colour; ``leds.brightness`` is their 5-bit
    global brightness."""

    count: int = 3
    """How many LEDs are on the chain (all show the same colour)."""
    spi_bus: int = 0
    """SPI bus of ``/dev/spidev<bus>.<device>``."""
    spi_device: int = 0
    """Chip select of ``/dev/spidev<bus>.<device>``."""
    clock_pin: int | str | None = None
    """GPIO clocking the LEDs when they are not on SPI pins (with ``data_pin``)."""
    data_pin: int | str | None = None
    """GPIO carrying the LEDs' data when they are not on SPI pins (with ``clock_pin``)."""

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 1024:
            raise _invalid(f"leds.apa102.count must be 1 to 1024 LEDs, not {self.count}", "count")
        for name in ("spi_bus", "spi_device"):
            if getattr(self, name) < 0:
                raise _invalid(f"leds.apa102.{name} must be 0 or more, not {getattr(self, name)}", name)
        if (self.clock_pin is None) != (self.data_pin is None):
            written = "clock_pin" if self.clock_pin is not None else "data_pin"
            raise _invalid(
                "leds.apa102: clock_pin and data_pin go together (both for LEDs on GPIO pins, neither for SPI)",
                written,
            )
        if self.clock_pin is not None and self.clock_pin == self.data_pin:
            raise _invalid(
                f"leds.apa102: clock_pin and data_pin must differ, not both {self.clock_pin}", "data_pin", "clock_pin"
            )

    @property
    def uses_spi(self) -> bool:
        """On the SPI bus (dtparam=spi=on, spidev), not clocked out on two GPIO pins."""
        return self.clock_pin is None


@dataclass(frozen=True)
class LedSettings:
    """Status light: one LED (on/off), one dimmable LED, an RGB LED, or a mic HAT's APA102 LEDs."""

    kind: LedKind = "led"
    """``none``, ``led`` (on/off), ``pwm`` (dimmable), ``rgb`` or ``apa102`` (a mic HAT's LEDs)."""
    pin: int | str = 27
    """GPIO of a single LED (``led``, ``pwm``)."""
    rgb: RgbPins = field(default_factory=RgbPins)
    """The pins of an RGB LED."""
    apa102: Apa102Settings = field(default_factory=Apa102Settings)
    """Where APA102 LEDs are wired."""
    active_high: bool = True
    """The LED lights when the pin is high (False: wired to 3.3 V, lit when low)."""
    brightness: float = 1.0
    """Scale of every pattern's brightness, in (0, 1] (APA102: their 5-bit global brightness)."""

    def __post_init__(self) -> None:
        if not 0 < self.brightness <= 1:
            raise _invalid(f"leds.brightness must be in (0, 1], not {self.brightness}", "brightness")


@dataclass(frozen=True)
class DictationSettings:
    """One press–speak–release cycle (its length limit is ``audio.max_recording_s``, taps are shorter than
    ``audio.min_recording_ms``)."""

    auto_silence_s: float = 1.2
    """``auto`` mode: stop after this much silence following speech."""
    auto_no_speech_s: float = 8.0
    """``auto`` mode: give up when nothing was said for this long."""
    type_while_talking: bool = True
    """Type each phrase as soon as it is transcribed, while the button is still held (off: all at release)."""
    space_between: bool = True
    """Type a space before a dictation that follows another one, so sentences do not run together."""
    keep_microphone_open: bool = False
    """Off: audio runs only while listening. On: the microphone stays open so ``audio.pre_roll_ms`` of sound
    from before the press is kept (in memory only) and the first syllable is never clipped."""

    def __post_init__(self) -> None:
        for name in ("auto_silence_s", "auto_no_speech_s"):
            _positive("dictation", name, getattr(self, name))


@dataclass(frozen=True)
class OutputSettings:
    """Where the text goes and how the host's keyboard layout is set."""

    transport: TransportName = "usb"
    """``usb`` (the HID gadget), ``bluetooth``, ``both``; ``terminal`` or ``uinput`` on a PC."""
    prefer: Literal["usb", "bluetooth"] = "usb"
    """With ``transport: both``: the link used when both hosts are connected."""
    layout: str = "us"
    """The host's keyboard layout (``voxkey keys --help`` lists them)."""
    unsupported_characters: UnsupportedPolicy = UnsupportedPolicy.TRANSLITERATE
    """What to do with a character the host layout cannot type."""
    host_wait_s: float = 300.0
    """How long text waits for an absent host before it is dropped, logged with its characters."""
    resume_within_s: float = 5.0
    """Text kept while the host was away resumes by itself only if the same host is back within this time.

    Later, after a USB re-enumeration, or with another host, it waits for a tap (LED: text-waiting);
    a double press drops it (``voxkey.kept``). 0: kept text always waits for a tap.
    """

    def __post_init__(self) -> None:
        _positive("output", "host_wait_s", self.host_wait_s)
        if not 0 <= self.resume_within_s < float("inf"):  # also refuses NaN
            raise _invalid(
                f"output.resume_within_s must be 0 or more seconds, not {self.resume_within_s!r}", "resume_within_s"
            )


@dataclass(frozen=True)
class UsbSettings:
    """The USB HID gadget (``gadget/voxkey-gadget`` sets it up)."""

    device: Path = Path("/dev/hidg0")
    """The gadget's HID device."""
    udc: str | None = None
    """The USB device controller whose state says whether a host is there (None: the only one)."""

    def __post_init__(self) -> None:
        if self.udc is not None and not self.udc.strip():
            raise _invalid("usb.udc must name a USB device controller (ls /sys/class/udc), or be left out", "udc")


@dataclass(frozen=True)
class ServiceSettings:
    """Daemon housekeeping."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """How much ``voxkey run`` logs (to the journal under systemd)."""


@dataclass(frozen=True)
class Config:
    """Everything ``voxkey run`` needs; ``source`` is the file it came from (None: defaults)."""

    button: ButtonSettings = field(default_factory=ButtonSettings)
    leds: LedSettings = field(default_factory=LedSettings)
    dictation: DictationSettings = field(default_factory=DictationSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)
    commands: CommandSettings = field(default_factory=CommandSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    usb: UsbSettings = field(default_factory=UsbSettings)
    bluetooth: BluetoothSettings = field(default_factory=BluetoothSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    source: Path | None = field(default=None, compare=False)


def _from_file(cls: type[Any], name: str) -> bool:
    """``Config.source`` records where the file was; it is not a setting."""
    return not (cls is Config and name == "source")


def default_path() -> Path:
    """``$VOXKEY_CONFIG`` or ``/etc/voxkey/config.yaml``."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_PATH)


def load(path: str | Path | None = None) -> Config:
    """Read and validate a config file.

    ``path`` None means the default location, where a missing file is fine
    (defaults apply); a path the user named must exist.
    """
    found = find(path)
    return Config() if found is None else loads(_read(found), found)


def load_sections(names: Collection[str], path: str | Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """Only the named sections of the config ``load`` would read, each checked exactly as ``load`` checks it.

    For commands that use a few settings: the file's syntax and its top-level
    keys are checked too, the other sections are not read, and their modules
    are not imported. Returns the sections (defaults for those the file leaves
    out) and the file they came from (None: there was none, defaults apply).
    """
    found = find(path)
    root = _compose(_read(found), found) if found is not None else None
    reader = _Reader(found or Path("<defaults>"), yaml.SafeLoader(""))
    written = reader.settings_nodes(Config, root, "") if root is not None else {}
    sections: dict[str, Any] = {}
    for name in names:
        cls = _section_class(name)
        sections[name] = reader.value_from(cls, written[name][1], name) if name in written else cls()
    return sections, found


def find(path: str | Path | None = None) -> Path | None:
    """The file ``load`` reads: ``path``, else the default location if it exists; None means the defaults."""
    if path is not None:
        return Path(path)
    candidate = default_path()
    return candidate if candidate.exists() else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass an existing file with --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def loads(text: str, path: str | Path = "<config>") -> Config:
    """Parse config text; ``path`` only names the file in error messages."""
    path = Path(path)
    root = _compose(text, path)
    if root is None:
        return dataclasses.replace(Config(), source=path)
    config: Config = _Reader(path, yaml.SafeLoader("")).dataclass_from(Config, root, "")
    return dataclasses.replace(config, source=path)


def _compose(text: str, path: Path) -> yaml.Node | None:
    """The YAML node tree of a config file; None for a file with nothing set."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character: PyYAML refuses the text before parsing it
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"not valid YAML: control character U+{code:04X} is not allowed; delete it"
        raise ConfigError(message, f"{path}:{line}") from None
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", str(path)) from None
    finally:
        loader.dispose()
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == "tag:yaml.org,2002:null"):
        return None
    return root


def _section_class(name: str) -> type[Any]:
    """The settings class of the top-level section ``name``."""
    cls: type[Any] = typing.get_type_hints(Config)[name]
    return cls


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, path: Path) -> ConfigError:
    """A YAML syntax error at the line to edit, with where the broken construct began.

    PyYAML notices an unclosed ``[``, ``{`` or quote only at the end of the
    stream, a line past the last one of the file. Its context mark says where
    the construct began: that is the line to point at then, and in every other
    case it is named too, because the opening is usually the mistake.
    """
    problem, context = exc.problem_mark, exc.context_mark
    at_end = problem is not None and problem.index >= len(text.rstrip())
    message = f"not valid YAML: {exc.problem}"
    if problem is not None:
        message += " at the end of the file" if at_end else f" (line {problem.line + 1}, column {problem.column + 1})"
    if context is not None and exc.context:
        message += f", {exc.context} that began on line {context.line + 1}, column {context.column + 1}"
    mark = context if at_end and context is not None else problem
    return ConfigError(message, f"{path}:{mark.line + 1 if mark else 1}")


class _Reader:
    """Builds typed values from YAML nodes, naming ``file:line`` on every mistake."""

    def __init__(self, path: Path, constructor: yaml.SafeLoader) -> None:
        self.path = path
        self.constructor = constructor

    def where(self, node: yaml.Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def fail(self, node: yaml.Node, message: str) -> ConfigError:
        return ConfigError(message, self.where(node))

    def settings_nodes(self, cls: type[Any], node: yaml.Node, name: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The settings a mapping writes, as key → (key node, value node); unknown or repeated keys fail."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{name or 'the file'} must be a mapping of settings, not {self._show(node)}")
        fields = [f.name for f in dataclasses.fields(cls) if f.init and _from_file(cls, f.name)]
        written: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self._construct(key_node)
            if not isinstance(key, str) or key not in fields:
                raise self.fail(key_node, self._unknown_key(key, name, fields))
            if key in written:
                raise self.fail(key_node, f"{self._dotted(name, key)} is set twice")
            written[key] = (key_node, value_node)
        return written

    def dataclass_from(self, cls: type[Any], node: yaml.Node, name: str) -> Any:
        written = self.settings_nodes(cls, node, name)
        hints = typing.get_type_hints(cls)
        values = {
            key: self.value_from(hints[key], value, self._dotted(name, key)) for key, (_, value) in written.items()
        }
        key_nodes = {key: key_node for key, (key_node, _) in written.items()}
        try:
            result = cls(**values)
        except ConfigError as exc:
            raise self._rejected(exc, node, name, key_nodes) from None
        except (ValueError, TypeError) as exc:
            raise self.fail(node, f"{name or 'config'}: {exc}") from None
        return result

    def _rejected(self, exc: ConfigError, node: yaml.Node, name: str, key_nodes: dict[str, yaml.Node]) -> ConfigError:
        """A section's own validation failed: point at the lines of the settings it blames.

        The first blamed setting written in the file gives ``file:line``; every
        other one is named with its line, so a conflict shows both places. A
        blamed setting left at its default has no line; only if none has one
        does the error fall back to the section's first line.
        """
        written = [(setting, key_nodes[setting]) for setting in exc.settings if setting in key_nodes]
        if not written:
            return self.fail(node, exc.message)
        (_, first), *others = written
        also = "; ".join(f"{self._dotted(name, s)} is on line {n.start_mark.line + 1}" for s, n in others)
        return self.fail(first, f"{exc.message} ({also})" if also else exc.message)

    def value_from(self, hint: Any, node: yaml.Node, name: str) -> Any:
        origin = typing.get_origin(hint)
        if origin is typing.Union or origin is types.UnionType:
            return self._union_from(typing.get_args(hint), node, name)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.dataclass_from(hint, node, name)
        if origin is Literal:
            value = self._scalar(node, name)
            choices = typing.get_args(hint)
            if value not in choices:
                raise self.fail(node, f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")
            return value
        if origin in (list, tuple, frozenset, set):
            return self._sequence_from(hint, origin, node, name)
        if origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, str]):
            return self._mapping_from(hint, node, name)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            raw = self._scalar(node, name)
            try:
                return hint(raw)
            except ValueError:
                names = ", ".join(str(m.value) for m in hint)
                raise self.fail(node, f"{name} must be one of {names}, not {raw!r}") from None
        return self._plain_from(hint, node, name)

    def _plain_from(self, hint: Any, node: yaml.Node, name: str) -> Any:
        value = self._scalar(node, name)
        if hint is Any or hint is object:
            return value
        if hint is bool:
            if isinstance(value, bool):
                return value
            raise self.fail(node, f"{name} must be true or false, not {value!r}")
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise self.fail(node, f"{name} must be a whole number, not {value!r}")
        if hint is float:
            # .nan passes every "> 0" check and .inf overflows when turned into samples or frames
            if isinstance(value, int | float) and not isinstance(value, bool) and _finite(value):
                return float(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                raise self.fail(node, f"{name} must be a finite number, not {value!r}")
            raise self.fail(node, f"{name} must be a number, not {value!r}")
        if hint is str:
            if isinstance(value, str):
                return value
            raise self.fail(node, f"{name} must be text, not {value!r}")
        if hint is Path:
            if isinstance(value, str) and value:
                return Path(value).expanduser()
            raise self.fail(node, f"{name} must be a path, not {value!r}")
        if hint is type(None):
            if value is None:
                return None
            raise self.fail(node, f"{name} must be empty (null), not {value!r}")
        raise self.fail(node, f"{name}: settings of type {hint!r} cannot be read from YAML")

    def _union_from(self, options: tuple[Any, ...], node: yaml.Node, name: str) -> Any:
        is_null = isinstance(node, yaml.ScalarNode) and self._construct(node) is None
        if is_null and type(None) in options:
            return None
        errors: list[ConfigError] = []
        # Exact types first, so `pin: 17` stays an int in `int | str`.
        for option in options:
            if option is type(None):
                continue
            try:
                return self.value_from(option, node, name)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        allowed = " or ".join(_describe(o) for o in options)
        raise self.fail(node, f"{name} must be {allowed}, not {self._show(node)}")

    def _sequence_from(self, hint: Any, origin: Any, node: yaml.Node, name: str) -> Any:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{name} must be a list, not {self._show(node)}")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(node.value):
                raise self.fail(node, f"{name} must have {len(args)} items, not {len(node.value)}")
            pairs = enumerate(zip(args, node.value, strict=True))
            return tuple(self.value_from(a, n, f"{name}[{i}]") for i, (a, n) in pairs)
        item = args[0] if args else Any
        items = [self.value_from(item, n, f"{name}[{i}]") for i, n in enumerate(node.value)]
        return origin(items)

    def _mapping_from(self, hint: Any, node: yaml.Node, name: str) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{name} must be a mapping, not {self._show(node)}")
        key_type, value_type = typing.get_args(hint) or (Any, Any)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.value_from(key_type, key_node, f"{name} key")
            result[key] = self.value_from(value_type, value_node, f"{name}.{key}")
        return result

    def _scalar(self, node: yaml.Node, name: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            raise self.fail(node, f"{name} must be a single value, not {kind}")
        return self._construct(node)

    def _construct(self, node: yaml.Node) -> Any:
        """A scalar's Python value; a tag PyYAML cannot build (``=``, ``!!python/...``) is a mistake at its line."""
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            raise self.fail(node, f"cannot read {node.value!r} here: {problem}") from None

    def _show(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.ScalarNode):
            return repr(self._construct(node))
        return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"

    @staticmethod
    def _dotted(parent: str, key: str) -> str:
        return f"{parent}.{key}" if parent else key

    def _unknown_key(self, key: object, section: str, known: list[str]) -> str:
        where = f"in {section}" if section else "at the top level"
        hint = difflib.get_close_matches(str(key), known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown setting {key!r} {where}{suggestion}; known: {', '.join(known)}"


def _finite(value: float) -> bool:
    """A number a float setting can hold: not .nan or .inf, and no integer too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _describe(hint: Any) -> str:
    names = {
        int: "a whole number",
        float: "a number",
        str: "text",
        bool: "true/false",
        Path: "a path",
        type(None): "empty (null)",
    }
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))


def dump_defaults() -> str:
    """The default configuration as YAML, for ``voxkey config defaults``."""
    return yaml.safe_dump(_plain(Config()), sort_keys=False)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {f.name: _plain(getattr(value, f.name)) for f in fields if _from_file(type(value), f.name)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
