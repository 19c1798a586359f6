"""Text → HID keyboard reports, and back, for one host keyboard layout.

A USB or Bluetooth keyboard sends key positions, never characters: the host's
layout decides what a position means. So a layout here is the inverse of the
host's: for every character, the key strokes that make the host produce it.
Layout data lives in ``layouts/<name>.yaml``; this module only interprets it.

Encoding rules that keep every host exact:
- each stroke is one report pressing one key with its modifiers already set,
  followed by an all-keys-up report, so a doubled letter is always released in
  between and no host ever sees a held (auto-repeating) key;
- with the host's Caps Lock on, letters are sent with Shift inverted, which is
  what Linux and Windows hosts undo (see ``Layout.strokes_for``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from voxkey.errors import LayoutError, UnsupportedCharacterError
from voxkey.hid import MODIFIER_BITS, RELEASE_ALL, REPORT_LENGTH, USAGE_NAMES, USAGES

LAYOUT_DIR = Path(__file__).resolve().parent / "layouts"
SHIFT = MODIFIER_BITS["shift"] | MODIFIER_BITS["rshift"]


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

    @classmethod
    def load(cls, name_or_path: str | Path) -> Layout:
        return _load_layout(str(name_or_path))

    @classmethod
    def from_mapping(cls, name: str, description: str, chars: Mapping[str, object]) -> Layout:
        strokes = {char: _parse_entry(char, entry) for char, entry in chars.items()}
        return cls(name, description, strokes, _caps_lock_variants(strokes))

    def can_type(self, char: str) -> bool:
        return char in self.strokes

    def strokes_for(self, char: str, caps_lock: bool = False) -> Strokes:
        """Strokes that make the host type ``char``.

        With Caps Lock on, a letter whose case pair sits on the same key is sent
        with Shift inverted: the host's Caps Lock inverts it back.
        """
        if caps_lock and char in self.caps_lock_strokes:
            return self.caps_lock_strokes[char]
        try:
            return self.strokes[char]
        except KeyError:
            raise UnsupportedCharacterError(char, self.name) from None

    def unsupported(self, text: str) -> list[str]:
        """Distinct characters of ``text`` this layout cannot type, in order of appearance."""
        return list(dict.fromkeys(char for char in text if char not in self.strokes))


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


@cache
def _load_layout(name_or_path: str) -> Layout:
    path = Path(name_or_path)
    if path.suffix != ".yaml":
        path = LAYOUT_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise LayoutError(f"unknown layout {name_or_path!r}; available: {', '.join(available_layouts())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LayoutError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("chars"), dict):
        raise LayoutError(f"{path}: expected a mapping with a 'chars' table")
    return Layout.from_mapping(str(data.get("name", path.stem)), str(data.get("description", "")), data["chars"])


def available_layouts() -> list[str]:
    return sorted(p.stem for p in LAYOUT_DIR.glob("*.yaml"))


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
    """Characters the host types for these strokes; multi-stroke sequences (dead keys) resolve whole."""
    table = _reverse_table(layout, caps_lock)
    prefixes = {sequence[:n] for sequence in table for n in range(1, len(sequence))}
    pending: Strokes = ()
    out: list[str] = []
    for stroke in strokes:
        pending += (stroke,)
        if pending in prefixes:
            continue
        if pending not in table:
            raise ValueError(f"strokes {' + '.join(map(str, pending))} type nothing on layout {layout.name}")
        out.append(table[pending])
        pending = ()
    if pending:
        raise ValueError(f"incomplete key sequence at end: {' + '.join(map(str, pending))}")
    return "".join(out)


def decode(reports: Iterable[bytes], layout: Layout, caps_lock: bool = False) -> str:
    """Text a host with ``layout`` types when it receives ``reports``."""
    return decode_strokes(pressed_strokes(reports), layout, caps_lock)


def _reverse_table(layout: Layout, caps_lock: bool) -> dict[Strokes, str]:
    table = {sequence: char for char, sequence in layout.strokes.items()}
    if caps_lock:
        table.update({sequence: char for char, sequence in layout.caps_lock_strokes.items()})
    return table
