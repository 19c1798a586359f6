"""Text → HID keyboard reports, and back, for one host keyboard layout.

A USB or Bluetooth keyboard sends key positions, never characters: the host's
layout decides what a position means. So a layout here is the inverse of the
host's: for every character, the key strokes that make the host produce it.
Layout data lives in ``layouts/<name>.yaml``; this module only interprets it.

Encoding rules that keep every host exact:
- each stroke is one report pressing one key with its modifiers already set,
  followed by an all-keys-up report, so a doubled letter is always released in
  between and no host ever sees a held (auto-repeating) key;
- with the host's Caps Lock on, characters are sent with the strokes that type
  them on a caps-locked host: the layout file's ``caps_lock`` table (measured
  with xkbcommon, see ``voxkey.layouts.generate``) or, for layouts without one,
  letters with Shift inverted (see ``Layout.strokes_for``);
- a layout may opt in to the Linux Unicode entry (``Layout.with_unicode_entry``):
  any character it lacks is then typed as Ctrl+Shift+U, hex digits, Space. That
  works only where an input method (IBus: GNOME, most GTK and Qt apps) listens,
  never in a bare terminal, on Windows or on macOS; ``voxkey.typing_policy``
  decides when to use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import yaml

from voxkey.errors import LayoutError, UnsupportedCharacterError
from voxkey.hid import MODIFIER_BITS, RELEASE_ALL, REPORT_LENGTH, USAGE_NAMES, USAGES

LAYOUT_DIR = Path(__file__).resolve().parent / "layouts"
SHIFT = MODIFIER_BITS["shift"] | MODIFIER_BITS["rshift"]
UNICODE_ENTRY_MODIFIERS = MODIFIER_BITS["ctrl"] | MODIFIER_BITS["shift"]
HEX_DIGITS = "0123456789abcdef"


@dataclass(frozen=True)
class KeyStroke:
    """One key pressed with a set of modifiers, then released."""

    modifiers: int
    usage: int

    def press_report(self) -> bytes:
        return bytes([self.modifiers, 0, self.usage]) + bytes(REPORT_LENGTH - 3)

    def __str__(self) -> str:
        names = [name for name, bit in MODIFIER_BITS.items() if self.modifiers & bit]
        names.append(USAGE_NAMES.get(self.usage, f"0x{self.usage:02x}"))
        return " ".join(names)


Strokes = tuple[KeyStroke, ...]


def parse_stroke(spec: str) -> KeyStroke:
    """Parse ``"shift altgr e"``: modifiers first, the key name last."""
    *modifier_names, key = spec.split()
    modifiers = 0
    for name in modifier_names:
        if name not in MODIFIER_BITS:
            raise LayoutError(f"unknown modifier {name!r} in stroke {spec!r}")
        modifiers |= MODIFIER_BITS[name]
    if key not in USAGES:
        raise LayoutError(f"unknown key name {key!r} in stroke {spec!r}")
    return KeyStroke(modifiers, USAGES[key])


@dataclass(frozen=True)
class Layout:
    """Characters a host layout can produce, each with the strokes that produce it."""

    name: str
    description: str
    strokes: Mapping[str, Strokes]
    caps_lock_strokes: Mapping[str, Strokes] = field(default_factory=dict)
    unicode_entry: bool = False

    @classmethod
    def load(cls, name_or_path: str | Path) -> Layout:
        return _load_layout(str(name_or_path))

    @classmethod
    def from_mapping(
        cls,
        name: str,
        description: str,
        chars: Mapping[str, object],
        caps_lock: Mapping[str, object] | None = None,
    ) -> Layout:
        """Parse a ``chars`` table; ``caps_lock`` lists the strokes that differ on a caps-locked host.

        Without a ``caps_lock`` table, letters whose case pair differs only by
        Shift are assumed to swap case under Caps Lock, as on every host for US.
        """
        strokes = {char: _parse_entry(char, entry) for char, entry in chars.items()}
        if caps_lock is None:
            return cls(name, description, strokes, _caps_lock_variants(strokes))
        unknown = [char for char in caps_lock if char not in strokes]
        if unknown:
            raise LayoutError(f"layout {name!r}: caps_lock lists {unknown[0]!r}, which is not in chars")
        caps = {char: _parse_entry(char, entry) for char, entry in caps_lock.items()}
        return cls(name, description, strokes, caps)

    def with_unicode_entry(self) -> Layout:
        """This layout, plus every other character through the host's Ctrl+Shift+U entry (IBus)."""
        return replace(self, unicode_entry=True)

    def can_type(self, char: str) -> bool:
        return char in self.strokes or (self.unicode_entry and self._enterable(char))

    def strokes_for(self, char: str, caps_lock: bool = False) -> Strokes:
        """Strokes that make the host type ``char``.

        With Caps Lock on, the ``caps_lock`` table's strokes are used where they
        differ: the host's Caps Lock then turns them into ``char``.
        """
        if caps_lock and char in self.caps_lock_strokes:
            return self.caps_lock_strokes[char]
        if char in self.strokes:
            return self.strokes[char]
        if self.unicode_entry and self._enterable(char):
            return self.unicode_entry_strokes(char, caps_lock)
        raise UnsupportedCharacterError(char, self.name)

    def unsupported(self, text: str) -> list[str]:
        """Distinct characters of ``text`` this layout cannot type, in order of appearance."""
        return list(dict.fromkeys(char for char in text if not self.can_type(char)))

    def unicode_entry_start(self) -> KeyStroke:
        """Ctrl+Shift+U, on whichever key types ``u`` on this layout (IBus matches the keysym)."""
        return KeyStroke(UNICODE_ENTRY_MODIFIERS, self.strokes["u"][-1].usage)

    def unicode_entry_strokes(self, char: str, caps_lock: bool = False) -> Strokes:
        """Ctrl+Shift+U, the code point in lower-case hex, Space: IBus's Unicode entry."""
        digits = f"{ord(char):x}"
        sequence = [self.unicode_entry_start()]
        for digit in digits + " ":
            sequence.extend(self.strokes_for(digit, caps_lock))
        return tuple(sequence)

    def _enterable(self, char: str) -> bool:
        """Unicode entry needs a printable character, and hex digits, ``u`` and Space on unmodified keys.

        IBus reads the hex digits as plain key presses; a layout that needs
        Shift for digits (AZERTY) would end the entry early, so it gets none.
        """
        if len(char) != 1 or not char.isprintable():
            return False
        keys = [self.strokes.get(c) for c in HEX_DIGITS + "u "]
        return all(strokes is not None and len(strokes) == 1 and strokes[0].modifiers == 0 for strokes in keys)


def _parse_entry(char: str, entry: object) -> Strokes:
    specs = [entry] if isinstance(entry, str) else entry
    if not isinstance(specs, list) or not specs or not all(isinstance(s, str) for s in specs):
        raise LayoutError(f"character {char!r}: expected a stroke or a list of strokes, got {entry!r}")
    return tuple(parse_stroke(spec) for spec in specs)


def _caps_lock_variants(strokes: Mapping[str, Strokes]) -> dict[str, Strokes]:
    """For letters whose case pair differs only by Shift on the last stroke: the swapped strokes."""
    variants: dict[str, Strokes] = {}
    for char, sequence in strokes.items():
        pair = char.swapcase()
        if len(char) != 1 or not char.isalpha() or pair == char or pair not in strokes:
            continue
        other = strokes[pair]
        if len(other) == len(sequence) and other[:-1] == sequence[:-1]:
            last, other_last = sequence[-1], other[-1]
            if last.usage == other_last.usage and (last.modifiers ^ other_last.modifiers) & ~SHIFT == 0:
                variants[char] = other
    return variants


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when PyYAML has it: 20× faster on the big European layout files (seconds on a Pi otherwise)."""


@cache
def _load_layout(name_or_path: str) -> Layout:
    path = Path(name_or_path)
    if path.suffix != ".yaml":
        path = LAYOUT_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise LayoutError(f"unknown layout {name_or_path!r}; available: {', '.join(available_layouts())}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise LayoutError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("chars"), dict):
        raise LayoutError(f"{path}: expected a mapping with a 'chars' table")
    caps_lock = data.get("caps_lock")
    if caps_lock is not None and not isinstance(caps_lock, dict):
        raise LayoutError(f"{path}: 'caps_lock' must be a mapping of characters to strokes")
    name, description = str(data.get("name", path.stem)), str(data.get("description", ""))
    return Layout.from_mapping(name, description, data["chars"], caps_lock)


def available_layouts() -> list[str]:
    return sorted(p.stem for p in LAYOUT_DIR.glob("*.yaml"))


def caps_lock_toggles(strokes: Strokes) -> int:
    """How often these strokes press Caps Lock (the ``caps_lock`` table switches it off and on again).

    The host's LED reports for those presses arrive after the keys, so right
    after such a character the Keyboard must not believe an LED report that is
    still in flight: the Caps Lock state is then the one it started with when
    the count is even.
    """
    return sum(1 for stroke in strokes if stroke.usage == USAGES["capslock"])


def reports_for_strokes(strokes: Strokes) -> Iterator[bytes]:
    """Press then release each stroke: the shape every character is sent in."""
    for stroke in strokes:
        yield stroke.press_report()
        yield RELEASE_ALL


def encode(text: str, layout: Layout, caps_lock: bool = False) -> list[bytes]:
    """All reports for ``text``; fails before producing anything if a character is untypable."""
    missing = layout.unsupported(text)
    if missing:
        raise UnsupportedCharacterError(missing[0], layout.name)
    return [report for char in text for report in reports_for_strokes(layout.strokes_for(char, caps_lock))]


def newly_pressed(previous: bytes, report: bytes) -> list[KeyStroke]:
    """Keys that go down from ``previous`` to ``report``, with the modifiers of ``report``."""
    if len(report) != REPORT_LENGTH:
        raise ValueError(f"keyboard report must be {REPORT_LENGTH} bytes, got {len(report)}")
    held = set(previous[2:])
    return [KeyStroke(report[0], usage) for usage in report[2:] if usage and usage not in held]


def pressed_strokes(reports: Iterable[bytes]) -> Iterator[KeyStroke]:
    """Strokes a host sees in a stream of reports."""
    previous = RELEASE_ALL
    for report in reports:
        yield from newly_pressed(previous, report)
        previous = report


def decode_strokes(strokes: Iterable[KeyStroke], layout: Layout, caps_lock: bool = False) -> str:
    """Characters the host types for these strokes; multi-stroke sequences (dead keys, Unicode entry) resolve whole."""
    table = _reverse_table(layout, caps_lock)
    prefixes = {sequence[:n] for sequence in table for n in range(1, len(sequence))}
    entry_start = layout.unicode_entry_start() if layout.unicode_entry else None
    hex_digits: list[str] | None = None
    pending: Strokes = ()
    out: list[str] = []
    for stroke in strokes:
        if stroke == entry_start and not pending and hex_digits is None:
            hex_digits = []
            continue
        pending += (stroke,)
        if pending in prefixes:
            continue
        if pending not in table:
            raise ValueError(f"strokes {' + '.join(map(str, pending))} type nothing on layout {layout.name}")
        char, pending = table[pending], ()
        if hex_digits is None:
            out.append(char)
        elif char in HEX_DIGITS:
            hex_digits.append(char)
        elif char == " " and hex_digits:
            out.append(chr(int("".join(hex_digits), 16)))
            hex_digits = None
        else:
            raise ValueError(f"Unicode entry on layout {layout.name} interrupted by {char!r}")
    if pending or hex_digits is not None:
        raise ValueError(f"incomplete key sequence at end: {' + '.join(map(str, pending)) or 'Unicode entry'}")
    return "".join(out)


def decode(reports: Iterable[bytes], layout: Layout, caps_lock: bool = False) -> str:
    """Text a host with ``layout`` types when it receives ``reports``."""
    return decode_strokes(pressed_strokes(reports), layout, caps_lock)


def _reverse_table(layout: Layout, caps_lock: bool) -> dict[Strokes, str]:
    table = {sequence: char for char, sequence in layout.strokes.items()}
    if caps_lock:
        table.update({sequence: char for char, sequence in layout.caps_lock_strokes.items()})
    return table
