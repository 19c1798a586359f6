"""Spoken commands: phrase in, actions out, including what must stay plain text."""

from __future__ import annotations

import pytest

from voxkey.hid import MODIFIER_BITS, USAGES
from voxkey.keymap import KeyStroke, Layout, decode_strokes, encode
from voxkey.text.commands import (
    COMMANDS,
    KEY_COMMANDS,
    Action,
    CommandSettings,
    EraseDictation,
    PressKey,
    TypeText,
    UndoLastDictation,
    interpret,
    key_command_strokes,
    phrases,
)

DEFAULT = CommandSettings()
KEYS_ALLOWED = CommandSettings(allow_key_commands=True)

TYPED_OUTPUT: list[tuple[str, str]] = [
    # plain dictation passes through untouched
    ("Hello world.", "Hello world."),
    ("It costs 3.50, right?", "It costs 3.50, right?"),
    # spoken punctuation as a whole phrase or at a phrase end
    ("Hello comma, how are you, question mark?", "Hello, how are you?"),
    ("How are you? Question mark.", "How are you?"),
    ("Great exclamation mark", "Great!"),
    ("Great, exclamation point.", "Great!"),
    ("That is all, full stop.", "That is all."),
    ("That is all period", "That is all."),
    ("Dear team colon", "Dear team:"),
    ("First semicolon, second.", "First; second."),
    ("Full-stop.", "."),
    # punctuation that is a phrase of its own (Whisper trailing off) is typed, not dropped
    ("I was thinking. …", "I was thinking. …"),
    # lines and paragraphs: Enter, with no stray spaces around it
    ("Dear John, new line. Thanks for coming.", "Dear John,\nThanks for coming."),
    ("Newline.", "\n"),
    ("End of part one. New paragraph. Part two.", "End of part one.\n\nPart two."),
    # quotes stick to the quoted words
    ("He said, open quote, hello, close quote.", 'He said, "hello,"'),
    ("She said open quote, yes end quote", 'She said "yes"'),
    # false positives: the words are ordinary speech, not commands
    ("The period of time was short.", "The period of time was short."),
    ("There was a period.", "There was a period."),
    ("Put a comma in the sentence.", "Put a comma in the sentence."),
    ("The colon is part of the intestine.", "The colon is part of the intestine."),
    ("Draw a new line.", "Draw a new line."),
    ("A new line of credit, please.", "A new line of credit, please."),
    ("The question mark was missing.", "The question mark was missing."),
    ("Please scratch that itch.", "Please scratch that itch."),
    ("Undo that knot for me.", "Undo that knot for me."),
    ("Select all the files.", "Select all the files."),
    ("Press enter to continue.", "Press enter to continue."),
    # key commands are text unless allowed
    ("Press enter.", "Press enter."),
    ("Select all", "Select all"),
]


def typed(actions: list[Action]) -> str:
    assert all(isinstance(action, TypeText) for action in actions), actions
    return "".join(action.text for action in actions if isinstance(action, TypeText))


@pytest.mark.parametrize(("spoken", "expected"), TYPED_OUTPUT)
def test_phrase_types_expected_text(spoken: str, expected: str) -> None:
    assert typed(interpret(spoken, DEFAULT)) == expected


ACTIONS: list[tuple[str, CommandSettings, list[Action]]] = [
    ("Scratch that.", DEFAULT, [UndoLastDictation()]),
    ("undo that", DEFAULT, [UndoLastDictation()]),
    ("Hello world. Scratch that.", DEFAULT, []),
    ("Hello world scratch that", DEFAULT, []),
    ("Hello. Scratch that. Goodbye.", DEFAULT, [TypeText("Goodbye.")]),
    ("Scratch that. Scratch that.", DEFAULT, [UndoLastDictation(), UndoLastDictation()]),
    ("Scratch that. Hello.", DEFAULT, [UndoLastDictation(), TypeText("Hello.")]),
    ("Comma.", DEFAULT, [TypeText(",", joins_previous=True)]),
    ("Period.", DEFAULT, [TypeText(".", joins_previous=True)]),
    ("New line.", DEFAULT, [TypeText("\n")]),
    ("", DEFAULT, []),
    ("Press enter.", KEYS_ALLOWED, [PressKey("enter")]),
    ("Select all.", KEYS_ALLOWED, [PressKey("ctrl a")]),
    ("Done, press enter.", KEYS_ALLOWED, [TypeText("Done,"), PressKey("enter")]),
    ("Select all. Hello.", KEYS_ALLOWED, [PressKey("ctrl a"), TypeText("Hello.")]),
    ("Press tab, press tab.", KEYS_ALLOWED, [PressKey("tab"), PressKey("tab")]),
    ("Done. Select all. Scratch that.", KEYS_ALLOWED, []),
    # text after a key press is its own action, after the key
    ("Done, press enter. Bye.", KEYS_ALLOWED, [TypeText("Done,"), PressKey("enter"), TypeText("Bye.")]),
    # scratch that drops everything the dictation said before it, however many actions that was ...
    ("Select all. Hello, press tab. Scratch that.", KEYS_ALLOWED, []),
    # ... but not an earlier undo of the previous dictation
    ("Scratch that. Select all, press tab. Scratch that.", KEYS_ALLOWED, [UndoLastDictation()]),
]


@pytest.mark.parametrize(("spoken", "settings", "expected"), ACTIONS)
def test_phrase_gives_expected_actions(spoken: str, settings: CommandSettings, expected: list[Action]) -> None:
    assert interpret(spoken, settings) == expected


SWITCHED_OFF: list[tuple[str, CommandSettings]] = [
    ("Hello comma", CommandSettings(punctuation=False)),
    ("Dear John, new line.", CommandSettings(new_line=False)),
    ("Part one. New paragraph.", CommandSettings(new_paragraph=False)),
    ("Scratch that.", CommandSettings(undo=False)),
    ("He said, open quote, hi.", CommandSettings(quotes=False)),
    ("I waited for a long period.", CommandSettings(disabled_phrases=frozenset({"period"}))),
    ("Wait, Full  Stop.", CommandSettings(disabled_phrases=frozenset({"Full  Stop"}))),
]


@pytest.mark.parametrize(("spoken", "settings"), SWITCHED_OFF)
def test_a_switched_off_command_is_typed_as_said(spoken: str, settings: CommandSettings) -> None:
    assert interpret(spoken, settings) == [TypeText(spoken)]


def test_disabling_one_phrase_keeps_its_synonyms() -> None:
    settings = CommandSettings(disabled_phrases=frozenset({"period"}))
    assert typed(interpret("That is all, full stop.", settings)) == "That is all."
    assert "period" not in phrases(settings)
    assert "full stop" in phrases(settings)


REPLACEMENTS = CommandSettings(replacements={"vox key": "voxkey", "jason": "JSON", "new york": "New York"})


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("I love my Vox Key.", "I love my voxkey."),
        ("Parse the jason file, new line.", "Parse the JSON file,\n"),
        ("Jasonville is not jason.", "Jasonville is not JSON."),
        ("From new york, comma, to Boston.", "From New York, to Boston."),
        ("vox keyboard", "vox keyboard"),
    ],
)
def test_replacements_apply_to_whole_words_only(spoken: str, expected: str) -> None:
    assert typed(interpret(spoken, REPLACEMENTS)) == expected


def test_a_replacement_cannot_create_a_command() -> None:
    settings = CommandSettings(replacements={"stop": "full stop"})
    assert typed(interpret("Bus stop", settings)) == "Bus full stop"


def test_by_default_nothing_but_text_enter_and_backspace_can_come_out() -> None:
    """Every command phrase, said every way, yields typed text only: no key presses, no chords."""
    us = Layout.load("us")
    allowed = {KeyStroke(0, USAGES["enter"]), KeyStroke(0, USAGES["backspace"])}
    for phrase in COMMANDS:
        for spoken in (phrase, f"{phrase}.", f"Hello, {phrase}.", f"Hello {phrase}", f"{phrase}, world"):
            for action in interpret(spoken, DEFAULT):
                assert not isinstance(action, PressKey), (spoken, action)
                if isinstance(action, TypeText):
                    reports = encode(action.text, us)
                    assert all(report[0] & ~(MODIFIER_BITS["shift"]) == 0 for report in reports), spoken
                    for char in action.text:  # a key that types no character must be Enter or Backspace
                        if not char.isprintable():
                            assert set(us.strokes_for(char)) <= allowed, (spoken, char)
    assert not any(phrase in phrases(DEFAULT) for phrase in KEY_COMMANDS)


def test_key_commands_resolve_letters_where_the_layout_puts_them() -> None:
    fr = Layout.load("fr")
    (select_all,) = key_command_strokes("ctrl a", fr)
    assert select_all == KeyStroke(MODIFIER_BITS["ctrl"], USAGES["q"])  # AZERTY has A where US has Q
    assert key_command_strokes("enter", fr) == (KeyStroke(0, USAGES["enter"]),)
    assert decode_strokes(key_command_strokes("tab", Layout.load("us")), Layout.load("us")) == "\t"


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("Scratch that.", [EraseDictation()]),  # a later phrase: the dictation's earlier phrases were typed
        ("Oh no, scratch that. Send it now.", [EraseDictation(), TypeText("Send it now.")]),
        ("See you soon.", [TypeText("See you soon.")]),
    ],
)
def test_scratch_that_in_a_later_phrase_erases_the_dictation_so_far(spoken: str, expected: list[Action]) -> None:
    assert interpret(spoken, continues=True) == expected


def test_scratch_that_as_a_first_phrase_still_undoes_the_previous_dictation() -> None:
    assert interpret("Scratch that.") == [UndoLastDictation()]
