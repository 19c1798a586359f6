"""What to type when the host layout lacks a character.

API (the daemon and the CLI call these two, in this order)::

    text = prepare_text(text, layout, policy)      # -> str every key of which
    keyboard = Keyboard(link, typing_layout(layout, policy))   # ...this layout can type

``prepare_text`` keeps every character the layout types directly. Whisper's
typographic characters (curly quotes, dashes, ellipsis, unusual spaces) that
the layout lacks become their plain forms first, before any other fallback.
What is still untypable is then handled by the ``UnsupportedPolicy``:

- ``transliterate`` (default): the closest ASCII by anyascii ("naïve café" →
  "naive cafe" on us, "€" → "EUR"); characters of the result the layout lacks
  too are dropped, so the output is always typable. Emoji are left out (their
  anyascii form is a ":shortcode:", not text anyone said).
- ``skip``: the character is left out.
- ``linux``: the character is kept and ``typing_layout`` returns the layout with
  the host's Unicode entry switched on (``Layout.with_unicode_entry``): the
  Keyboard types Ctrl+Shift+U, the hex code point, Space. Limits: it works only
  where IBus (or another input method honouring Ctrl+Shift+U) handles the
  keyboard: GNOME and most GTK/Qt apps on Linux. Terminals without an input
  method, Windows and macOS type a stray "u" and hex digits instead; a layout
  without plain hex digit keys (AZERTY needs Shift for digits) cannot use it,
  and such characters fall back to transliteration.

Each untypable character is logged once per process (per layout and policy),
not on every dictation, so the log tells the user what to change without
flooding. Nothing here raises for a character: typing never crashes on text.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import replace
from enum import StrEnum

from anyascii import anyascii

from voxkey.errors import ConfigError
from voxkey.keymap import Layout

log = logging.getLogger(__name__)


class UnsupportedPolicy(StrEnum):
    """The ``unsupported_characters`` setting."""

    TRANSLITERATE = "transliterate"
    SKIP = "skip"
    LINUX = "linux"


DEFAULT_POLICY = UnsupportedPolicy.TRANSLITERATE

TYPOGRAPHIC_PLAIN: dict[str, str] = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark (also Whisper's apostrophe)
    "\u201a": "'",  # single low-9 quotation mark
    "\u201b": "'",  # single high-reversed-9 quotation mark
    "\u2032": "'",  # prime
    "\u2039": "'",  # single left-pointing angle quotation mark
    "\u203a": "'",  # single right-pointing angle quotation mark
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',  # right double quotation mark
    "\u201e": '"',  # double low-9 quotation mark
    "\u201f": '"',  # double high-reversed-9 quotation mark
    "\u2033": '"',  # double prime
    "\u00ab": '"',  # left-pointing double angle quotation mark
    "\u00bb": '"',  # right-pointing double angle quotation mark
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # horizontal ellipsis
    "\u00a0": " ",  # no-break space
    "\u2002": " ",  # en space
    "\u2003": " ",  # em space
    "\u2004": " ",  # three-per-em space
    "\u2005": " ",  # four-per-em space
    "\u2006": " ",  # six-per-em space
    "\u2007": " ",  # figure space
    "\u2008": " ",  # punctuation space
    "\u2009": " ",  # thin space
    "\u200a": " ",  # hair space
    "\u202f": " ",  # narrow no-break space
    "\u205f": " ",  # medium mathematical space
    "\u3000": " ",  # ideographic space
    "\u2028": "\n",  # line separator
    "\u2029": "\n",  # paragraph separator
    "\u00ad": "",  # soft hyphen: invisible unless a line breaks there
    "\u200b": "",  # zero width space
    "\u200c": "",  # zero width non-joiner
    "\u200d": "",  # zero width joiner
    "\u2060": "",  # word joiner
    "\ufeff": "",  # zero width no-break space (byte order mark)
    "\r": "",  # Windows line ends: the "\n" after it is the Enter
}
"""Typographic characters and their plain forms, used only when the layout lacks the character."""

_logged: set[tuple[str, str, str]] = set()


def parse_policy(value: str) -> UnsupportedPolicy:
    """The policy named in a config file or on the command line."""
    try:
        return UnsupportedPolicy(value)
    except ValueError:
        choices = ", ".join(policy.value for policy in UnsupportedPolicy)
        raise ConfigError(f"unsupported_characters must be one of {choices}, not {value!r}") from None


def typing_layout(layout: Layout, policy: UnsupportedPolicy | str = DEFAULT_POLICY) -> Layout:
    """The layout the Keyboard must use for text from ``prepare_text`` with the same policy."""
    return layout.with_unicode_entry() if UnsupportedPolicy(policy) is UnsupportedPolicy.LINUX else layout


def prepare_text(text: str, layout: Layout, policy: UnsupportedPolicy | str = DEFAULT_POLICY) -> str:
    """``text`` rewritten so that ``typing_layout(layout, policy)`` can type every character of it."""
    policy = UnsupportedPolicy(policy)
    base = replace(layout, unicode_entry=False)
    target = typing_layout(base, policy)
    return "".join(_replacement(char, base, target, policy) for char in unicodedata.normalize("NFC", text))


def _replacement(char: str, layout: Layout, target: Layout, policy: UnsupportedPolicy) -> str:
    if layout.can_type(char):
        return char
    plain = TYPOGRAPHIC_PLAIN.get(char)
    if plain is not None and all(layout.can_type(c) for c in plain):
        return _logged_once(char, layout, policy, plain)
    if policy is UnsupportedPolicy.LINUX and target.can_type(char):
        return _logged_once(char, layout, policy, char)
    if policy is UnsupportedPolicy.SKIP or not char.isprintable():
        return _logged_once(char, layout, policy, "")
    ascii_form = anyascii(char)
    if len(ascii_form) > 2 and ascii_form[0] == ascii_form[-1] == ":":
        ascii_form = ""  # an emoji's ":shortcode:" is no transliteration: leave the emoji out
    return _logged_once(char, layout, policy, "".join(c for c in ascii_form if layout.can_type(c)))


def _logged_once(char: str, layout: Layout, policy: UnsupportedPolicy, typed: str) -> str:
    key = (layout.name, char, policy.value)
    if key not in _logged:
        _logged.add(key)
        how = "it by Unicode entry (Ctrl+Shift+U)" if typed == char else (f"{typed!r} instead" if typed else "nothing")
        log.warning(
            "layout %r cannot type %r (U+%04X); typing %s (unsupported_characters: %s)",
            layout.name,
            char,
            ord(char),
            how,
            policy.value,
        )
    return typed
