"""Write ``layouts/<name>.yaml`` from xkeyboard-config, as libxkbcommon reads it.

Run ``python -m voxkey.layouts.generate`` (all layouts) or with layout names.
For each layout it asks a simulated host (``XkbHost``) what every key types
with no modifier, Shift, AltGr and Shift+AltGr; a character reachable more than
one way keeps the way with the fewest modifiers. Characters no single key gives
are then looked for behind each dead key (dead key, then a letter or Space),
resolved by the Compose table exactly as a Linux desktop does. Finally the same
host with Caps Lock on tells which characters need other strokes then: those
go in the ``caps_lock`` table, so typing stays exact whatever the host's Caps
Lock state (see ``voxkey.keymap``).

The output is committed; tests/test_layouts.py checks it against xkbcommon, so
a newer xkb-data that moves a key shows up as a failing test, not a wrong letter.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from voxkey.hid import USAGES
from voxkey.keymap import LAYOUT_DIR, KeyStroke, Strokes, parse_stroke
from voxkey.layouts.xkb_host import XkbHost


@dataclass(frozen=True)
class LayoutSpec:
    """Our layout name, and the xkeyboard-config layout and variant it stands for."""

    name: str
    xkb_layout: str
    xkb_variant: str
    description: str
    iso: bool = True
    """Keyboards for this layout have the ISO key left of Z (all European ones; not US-style)."""


LAYOUTS: tuple[LayoutSpec, ...] = (
    LayoutSpec("us", "us", "", "English (US)", iso=False),
    LayoutSpec("us-intl", "us", "intl", "English (US, international with dead keys)", iso=False),
    LayoutSpec("gb", "gb", "", "English (UK)"),
    LayoutSpec("de", "de", "", "German"),
    LayoutSpec("fr", "fr", "", "French (AZERTY)"),
    LayoutSpec("es", "es", "", "Spanish"),
    LayoutSpec("it", "it", "", "Italian"),
    LayoutSpec("pt", "pt", "", "Portuguese"),
    LayoutSpec("ch", "ch", "", "German (Switzerland)"),
    LayoutSpec("se", "se", "", "Swedish"),
    LayoutSpec("no", "no", "", "Norwegian"),
    LayoutSpec("dk", "dk", "", "Danish"),
    LayoutSpec("fi", "fi", "", "Finnish"),
    LayoutSpec("nl", "nl", "", "Dutch"),
    LayoutSpec("be", "be", "", "Belgian"),
    LayoutSpec("dvorak", "us", "dvorak", "English (Dvorak)", iso=False),
    LayoutSpec("colemak", "us", "colemak", "English (Colemak)", iso=False),
)
SPECS = {spec.name: spec for spec in LAYOUTS}

PRINTING_KEYS: tuple[str, ...] = (
    *"abcdefghijklmnopqrstuvwxyz",
    *"1234567890",
    "minus",
    "equal",
    "leftbrace",
    "rightbrace",
    "backslash",
    "semicolon",
    "apostrophe",
    "grave",
    "comma",
    "dot",
    "slash",
    "nonus_backslash",
    "space",
)
"""Keys that type characters, in the order that breaks ties within a modifier tier (main block first).

Fewest modifiers win: levels one and two are the printed legends every OS
agrees on, while xkb's AltGr levels hold extras other systems may lack.
"""

ANSI_KEYS = tuple(key for key in PRINTING_KEYS if key != "nonus_backslash")
"""Keys of US-style (ANSI) keyboards, which lack the ISO key left of Z.

xkb gives that key < > on us, Windows a backslash: a key the layout's own
keyboards do not have is never used. On ISO layouts it is a real key with the
same legend on every OS (< > on de, fr, es, ...), so it is used there.
"""

MODIFIER_TIERS: tuple[str, ...] = ("", "shift ", "altgr ", "shift altgr ")
DEAD_KEY_BASES = frozenset(string.ascii_letters + " ")
"""Dead keys are combined with these only: the combinations every host OS agrees on."""
CONTROL_CHARS: dict[str, str] = {"\b": "backspace", "\t": "tab", "\n": "enter"}
CAPS_LOCK = parse_stroke("capslock")
SPACE = parse_stroke("space")
ALTGR = parse_stroke("altgr space").modifiers


@dataclass
class Probe:
    """What a host types for single strokes and dead-key pairs, in one Caps Lock state."""

    direct: dict[str, Strokes]
    dead: list[KeyStroke]
    composed: dict[str, Strokes]

    def find(self, char: str) -> Strokes | None:
        """The strokes to use for ``char``: a single stroke, unless an AltGr one loses to "dead key, Space".

        US-International's apostrophe and quote keys are dead keys; every OS
        types ' as "apostrophe, Space", while AltGr+' is an xkb-only extra.
        """
        single, pair = self.direct.get(char), self.composed.get(char)
        if single and pair and single[0].modifiers & ALTGR and not pair[0].modifiers & ALTGR and pair[1] == SPACE:
            return pair
        return single or pair

    def chars(self) -> dict[str, Strokes]:
        table = {char: self.find(char) for char in [*self.direct, *self.composed]}
        return {char: strokes for char, strokes in table.items() if strokes is not None}


def _typable(text: str) -> bool:
    return len(text) == 1 and unicodedata.category(text) not in ("Cc", "Cs")


def probe(host: XkbHost, iso: bool) -> Probe:
    """Every character one stroke types, then those only a dead key and one more stroke type."""
    direct: dict[str, Strokes] = {}
    dead: list[KeyStroke] = []
    for tier in MODIFIER_TIERS:
        for key in PRINTING_KEYS if iso else ANSI_KEYS:
            stroke = parse_stroke(tier + key)
            host.compose.reset()
            if host.keysym_name(stroke).startswith("dead_"):
                dead.append(stroke)
                continue
            text = host.stroke(stroke)
            if _typable(text):
                direct.setdefault(text, (stroke,))
    bases = [strokes[0] for char, strokes in direct.items() if char in DEAD_KEY_BASES]
    composed: dict[str, Strokes] = {}
    for dead_stroke in dead:
        for base in bases:
            host.compose.reset()
            text = host.strokes((dead_stroke, base))
            if _typable(text) and (text not in direct or base == SPACE):
                composed.setdefault(text, (dead_stroke, base))
    return Probe(direct, dead, composed)


def build_tables(spec: LayoutSpec) -> tuple[dict[str, Strokes], dict[str, Strokes]]:
    """The character table and the Caps Lock exceptions for one layout."""
    host = XkbHost(spec.xkb_layout, spec.xkb_variant)
    plain = probe(host, spec.iso)
    chars = plain.chars()
    locked_host = XkbHost(spec.xkb_layout, spec.xkb_variant)
    locked_host.toggle_caps_lock()
    caps: dict[str, Strokes] = {}
    if not locked_host.caps_lock:
        return chars, caps  # the Caps Lock key does something else here (Colemak: Backspace)
    locked = probe(locked_host, spec.iso)
    for char, strokes in chars.items():
        locked_host.compose.reset()
        if locked_host.strokes(strokes) == char:
            continue
        found = locked.find(char)
        if found is None:
            found = (CAPS_LOCK, *strokes, CAPS_LOCK)
            locked_host.compose.reset()
            if locked_host.strokes(found) != char:
                raise RuntimeError(f"{spec.name}: {char!r} cannot be typed with Caps Lock on")
        caps[char] = found
    return chars, caps


def _stroke_spec(stroke: KeyStroke) -> str:
    spec = str(stroke)
    return json.dumps(spec) if spec.isdigit() else spec


def _entry(strokes: Strokes) -> str:
    specs = [_stroke_spec(stroke) for stroke in strokes]
    return specs[0] if len(specs) == 1 else "[" + ", ".join(specs) + "]"


def _char_key(char: str) -> str:
    if char in CONTROL_CHARS or char == " " or unicodedata.category(char)[0] not in "CZM":
        return json.dumps(char, ensure_ascii=False)
    return f'"\\u{ord(char):04x}"'


def _lines(table: dict[str, Strokes]) -> Iterable[str]:
    for char in sorted(table, key=ord):
        line = f"  {_char_key(char)}: {_entry(table[char])}"
        if not char.isascii():
            line += f"  # {unicodedata.name(char, f'U+{ord(char):04X}')}"
        yield line


def render(spec: LayoutSpec, chars: dict[str, Strokes], caps: dict[str, Strokes]) -> str:
    control = {char: (KeyStroke(0, USAGES[key]),) for char, key in CONTROL_CHARS.items()}
    dead_keys = sorted({str(s[0]) for s in chars.values() if len(s) > 1}, key=lambda s: (len(s), s))
    header = [
        f"# {spec.description}: generated by `python -m voxkey.layouts.generate {spec.name}` from",
        f"# xkeyboard-config (layout {spec.xkb_layout!r}, variant {spec.xkb_variant!r}) through libxkbcommon.",
        "# Do not edit by hand: regenerate. Each character maps to the strokes that type it on a host",
        "# with this layout: modifiers first, then the HID key name (voxkey/hid.py); a list is several",
        "# strokes in a row (a dead key, then the key it modifies, resolved by the host's Compose table).",
        f"# Dead keys: {', '.join(dead_keys) if dead_keys else 'none used'}.",
        "# caps_lock: strokes that differ when the host's Caps Lock is on (capslock ... capslock = the",
        "# character has no key while locked, so Caps Lock is switched off around it).",
        f"name: {json.dumps(spec.name)}",  # quoted: YAML reads a bare no as false
        f"description: {spec.description}",
        f"xkb: {{layout: {json.dumps(spec.xkb_layout)}, variant: {json.dumps(spec.xkb_variant)}}}",
        "chars:",
    ]
    body = list(_lines({**control, **chars}))
    no_caps_lock = "caps_lock: {}  # this layout's Caps Lock key is no Caps Lock"
    caps_lines = ["caps_lock:", *_lines(caps)] if caps else [no_caps_lock]
    return "\n".join([*header, *body, *caps_lines]) + "\n"


def write_layout(spec: LayoutSpec, directory: Path = LAYOUT_DIR) -> tuple[int, int]:
    chars, caps = build_tables(spec)
    (directory / f"{spec.name}.yaml").write_text(render(spec, chars, caps), encoding="utf-8")
    return len(chars), len(caps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("layouts", nargs="*", choices=[[], *SPECS], metavar="LAYOUT", help="default: all")
    parser.add_argument("--dir", type=Path, default=LAYOUT_DIR, help="where to write (default: the package's)")
    args = parser.parse_args(argv)
    for name in args.layouts or list(SPECS):
        count, caps = write_layout(SPECS[name], args.dir)
        print(f"{name}: {count} characters, {caps} Caps Lock exceptions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
