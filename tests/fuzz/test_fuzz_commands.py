"""Fuzz the spoken-command interpreter: nothing said may press a key chord unless the user allowed it.

Phrases are drawn from the command vocabulary itself (every command phrase, their parts, determiners,
whisper's punctuation, hyphens and quotes around words) mixed with random words and arbitrary Unicode,
so the interpreter sees near-misses ("press", "select all the", "new-line,") far more than a uniform
random string would give it. Properties, under random command switches, disabled phrases and
replacements:

- without ``allow_key_commands`` no ``PressKey`` comes out, and every typed text, on the US layout with
  the default policy, is keys with at most Shift: no Ctrl, Alt or Super ever reaches the host;
- with it, the only keys are the documented ``KEY_COMMANDS`` ones;
- the interpreter never raises.

Budget (CI): 300 + 100 examples, about 15 s on the 2-core dev machine.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from voxkey.hid import MODIFIER_BITS, RELEASE_ALL
from voxkey.keymap import Layout, encode
from voxkey.text.commands import (
    COMMANDS,
    DETERMINERS,
    KEY_COMMANDS,
    CommandSettings,
    PressKey,
    TypeText,
    interpret,
    key_command_strokes,
)
from voxkey.typing_policy import prepare_text

from . import budget

US = Layout.load("us")
CHORD_MODIFIERS = ~(MODIFIER_BITS["shift"] | MODIFIER_BITS["rshift"] | MODIFIER_BITS["altgr"]) & 0xFF

vocabulary = sorted({word for phrase in COMMANDS for word in phrase.split()} | set(COMMANDS) | DETERMINERS)
words = st.one_of(
    st.sampled_from(vocabulary),
    st.sampled_from(vocabulary).map(str.upper),
    st.sampled_from(vocabulary).map(str.title),
    st.sampled_from(["hello", "world", "ctrl", "control", "alt", "super", "command", "key", "enter", "a"]),
    st.text(max_size=6),
)
separators = st.sampled_from(
    [" ", "  ", ", ", ". ", "? ", "! ", "; ", ": ", "… ", "-", "\n", ' "', '" ', "' ", " (", ") "]
)


@st.composite
def speech(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(words, separators), max_size=12))
    return "".join(word + sep for word, sep in parts) + draw(st.sampled_from(["", ".", "?", "!", ","]))


@st.composite
def command_settings(draw: st.DrawFn, allow_key_commands: bool) -> CommandSettings:
    switches = {name: draw(st.booleans()) for name in ("new_line", "new_paragraph", "undo", "punctuation", "quotes")}
    disabled = frozenset(draw(st.lists(st.sampled_from(sorted(COMMANDS)), max_size=3)))
    replacements = draw(st.dictionaries(st.sampled_from([*vocabulary, "hello"]), st.text(max_size=8), max_size=3))
    return CommandSettings(
        **switches, disabled_phrases=disabled, replacements=replacements, allow_key_commands=allow_key_commands
    )


@budget(300)
@given(text=speech(), settings=command_settings(allow_key_commands=False), continues=st.booleans())
@example(text="Select all. Press enter.", settings=CommandSettings(), continues=False)
@example(text="press control alt delete", settings=CommandSettings(), continues=True)
def test_no_key_chord_without_allow_key_commands(text: str, settings: CommandSettings, continues: bool) -> None:
    actions = interpret(text, settings, continues=continues)
    assert not [a for a in actions if isinstance(a, PressKey)], actions
    for action in actions:
        if isinstance(action, TypeText):
            for report in encode(prepare_text(action.text, US), US):
                assert report == RELEASE_ALL or report[0] & CHORD_MODIFIERS == 0, (action, report.hex())


@budget(100)
@given(text=speech(), settings=command_settings(allow_key_commands=True))
@example(text="Select all.", settings=CommandSettings(allow_key_commands=True))
def test_with_key_commands_only_the_documented_keys(text: str, settings: CommandSettings) -> None:
    for action in interpret(text, settings):
        if isinstance(action, PressKey):
            assert action.name in KEY_COMMANDS.values(), action
            assert key_command_strokes(action.name, US)


def test_select_all_is_a_chord_only_when_allowed() -> None:
    """The property has teeth: the same words give Ctrl+A with key commands on, text without."""
    assert interpret("Select all.", CommandSettings(allow_key_commands=True)) == [PressKey("ctrl a")]
    assert interpret("Select all.", CommandSettings()) == [TypeText("Select all.")]
