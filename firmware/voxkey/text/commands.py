"""Spoken commands in a finished dictation: what to type and which keys to press.

API: ``interpret(text, settings) -> list[Action]`` for each dictation's cleaned
text; the daemon executes the actions in order:

- ``TypeText(text)``: type it (``"\\n"`` is the Enter key, so "new line" and
  "new paragraph" are plain text). ``joins_previous`` says the text begins with
  punctuation that belongs to the previous dictation's last word, so no
  separating space goes before it.
- ``UndoLastDictation()``: erase what the previous dictation typed, with as many
  Backspaces as it typed characters (the daemon keeps that count).
- ``EraseDictation()``: erase what this dictation already typed (streaming: its
  earlier phrases were typed while the user was still talking).
- ``PressKey(name)``: only with ``allow_key_commands``; ``name`` is a stroke spec
  (``"enter"``, ``"ctrl a"``; ``key_command_strokes`` resolves it for a layout).

Recognition rules, so ordinary speech stays text:

- a command counts only as a whole phrase or as the last words of a phrase; a
  phrase ends at Whisper's punctuation (. , ! ? ; :) or at the end of the
  dictation. "The period of time" has "period" mid-phrase and stays text, while
  "Hello comma" or "How are you, question mark?" are commands. Whisper's own
  punctuation after a command word is dropped (it only marked the pause).
  After a determiner ("a period.", "the colon.") a word is a noun and stays
  text. Ambiguity remains ("a long period." ends in "."): whoever says such
  sentences can switch "period" off with ``disabled_phrases`` and say "full stop".
- "scratch that" / "undo that" as the whole dictation undoes the previous
  dictation; after other words, it drops what this dictation said before it.
- by default nothing but text, Enter and Backspace comes out: the key commands
  ("press enter", "select all", ...) exist only with ``allow_key_commands``, so
  nothing said can press Ctrl, Alt or Super chords on the host.
- ``replacements`` (spoken → written, e.g. {"vox key": "voxkey"}) apply to the
  typed text as whole words, case-insensitively, after commands are taken out,
  so a replacement can neither create nor hide a command.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from voxkey.errors import ConfigError
from voxkey.keymap import KeyStroke, Layout, parse_stroke


@dataclass(frozen=True)
class TypeText:
    """Type this text (``\\n`` = Enter)."""

    text: str
    joins_previous: bool = False


@dataclass(frozen=True)
class UndoLastDictation:
    """Erase exactly the characters the previous dictation typed."""


@dataclass(frozen=True)
class EraseDictation:
    """Erase what this dictation has typed so far (its earlier phrases, typed while the user spoke)."""


@dataclass(frozen=True)
class PressKey:
    """Press one key or chord, e.g. ``"enter"`` or ``"ctrl a"``; only with key commands allowed."""

    name: str


Action = TypeText | UndoLastDictation | EraseDictation | PressKey


@dataclass(frozen=True)
class CommandSettings:
    """Which spoken commands are on; from the ``commands`` section of the config."""

    new_line: bool = True
    """ "new line" (and "newline") types Enter."""
    new_paragraph: bool = True
    """ "new paragraph" types Enter twice."""
    undo: bool = True
    """ "scratch that" and "undo that" erase the previous dictation, or this one's words before them."""
    punctuation: bool = True
    """ "comma", "period", "question mark", ... type the mark."""
    quotes: bool = True
    """ "open quote" and "close quote" type a double quote."""
    disabled_phrases: frozenset[str] = frozenset()
    """Single phrases to leave as text, e.g. {"period"} while "full stop" stays a command."""
    replacements: Mapping[str, str] = field(default_factory=dict)
    """Spoken → written, as whole words and case-insensitively, e.g. {"vox key": "voxkey"}."""
    allow_key_commands: bool = False
    """ "press enter", "select all", ...: off, nothing said can press Ctrl, Alt or Super chords on the host."""

    def __post_init__(self) -> None:
        for phrase in self.disabled_phrases:
            if " ".join(phrase.lower().split()) not in COMMANDS:
                close = difflib.get_close_matches(phrase.lower(), COMMANDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"commands.disabled_phrases: {phrase!r} is not a spoken command{hint}; "
                    f"the commands are: {', '.join(COMMANDS)}",
                    settings=("disabled_phrases",),
                )
        for spoken in self.replacements:
            if not spoken.split():
                raise ConfigError(
                    f"commands.replacements: {spoken!r} has no words to replace (it would match everywhere)",
                    settings=("replacements",),
                )


class Kind(Enum):
    """How a command joins the text around it."""

    CLOSING = "closing"  # punctuation that sticks to the word before: , . ? ! : ; and a closing quote
    OPENING = "opening"  # sticks to the word after: an opening quote
    BREAK = "break"  # line breaks: no space on either side
    UNDO = "undo"
    KEY = "key"


@dataclass(frozen=True)
class Command:
    phrase: str
    kind: Kind
    output: str
    switch: str


PUNCTUATION: dict[str, str] = {
    "comma": ",",
    "period": ".",
    "full stop": ".",
    "question mark": "?",
    "exclamation mark": "!",
    "exclamation point": "!",
    "colon": ":",
    "semicolon": ";",
}
OPEN_QUOTES = ("open quote", "open quotes", "begin quote")
CLOSE_QUOTES = ("close quote", "close quotes", "end quote", "unquote")
KEY_COMMANDS: dict[str, str] = {
    "press enter": "enter",
    "press return": "enter",
    "press tab": "tab",
    "press escape": "esc",
    "press backspace": "backspace",
    "press delete": "delete",
    "press up": "up",
    "press down": "down",
    "press left": "left",
    "press right": "right",
    "press home": "home",
    "press end": "end",
    "select all": "ctrl a",
}
"""The documented key commands, only with ``allow_key_commands``. "select all" is Ctrl+A (not macOS's Cmd+A)."""


DETERMINERS = frozenset(
    "a an the this that these those each every another any no some one my your his her its our their".split()  # noqa: SIM905
)
"""A command word right after one of these is a noun ("the period", "a new line") and stays text."""
_NOUN_LIKE = frozenset({Kind.CLOSING, Kind.OPENING, Kind.BREAK})


def _commands() -> dict[str, Command]:
    table = [Command(phrase, Kind.CLOSING, mark, "punctuation") for phrase, mark in PUNCTUATION.items()]
    table += [Command(phrase, Kind.OPENING, '"', "quotes") for phrase in OPEN_QUOTES]
    table += [Command(phrase, Kind.CLOSING, '"', "quotes") for phrase in CLOSE_QUOTES]
    table += [Command(phrase, Kind.BREAK, "\n", "new_line") for phrase in ("new line", "newline")]
    table += [Command("new paragraph", Kind.BREAK, "\n\n", "new_paragraph")]
    table += [Command(phrase, Kind.UNDO, "", "undo") for phrase in ("scratch that", "undo that")]
    table += [Command(phrase, Kind.KEY, key, "allow_key_commands") for phrase, key in KEY_COMMANDS.items()]
    return {command.phrase: command for command in table}


COMMANDS: dict[str, Command] = _commands()
_LONGEST = max(len(phrase.split()) for phrase in COMMANDS)
_PHRASE = re.compile(r"(?P<body>.*?)(?P<delim>[.,!?;:…]+(?=\s|$)|$)(?P<space>\s*)", re.DOTALL)
_WORD_EDGES = "\"'“”‘’«»()"
_PHRASE_END = ".,!?;:…"


def interpret(text: str, settings: CommandSettings | None = None, continues: bool = False) -> list[Action]:
    """The actions one dictation asks for (see the module docstring for the rules).

    ``continues``: ``text`` is a later phrase of a dictation whose earlier
    phrases were typed already, so "scratch that" erases those too.
    """
    return _Interpreter(settings or CommandSettings(), continues).run(text)


def key_command_strokes(name: str, layout: Layout) -> tuple[KeyStroke, ...]:
    """Strokes for a ``PressKey`` name on ``layout``: a letter is found where the layout puts it."""
    *modifiers, key = name.split()
    if len(key) == 1 and layout.can_type(key):
        *before, last = layout.strokes_for(key)
        extra = 0
        for modifier in modifiers:
            extra |= parse_stroke(f"{modifier} a").modifiers
        return (*before, KeyStroke(last.modifiers | extra, last.usage))
    return (parse_stroke(name),)


def _enabled(command: Command, settings: CommandSettings) -> bool:
    disabled = {" ".join(phrase.lower().split()) for phrase in settings.disabled_phrases}
    return bool(getattr(settings, command.switch)) and command.phrase not in disabled


def _normalise(word: str) -> str:
    return word.strip(_WORD_EDGES).lower()


class _Interpreter:
    """One dictation's pass: typed text collects in ``buffer`` until an action must come between."""

    def __init__(self, settings: CommandSettings, continues: bool = False) -> None:
        self.settings = settings
        self.continues = continues
        self.actions: list[Action] = []
        self.buffer = ""
        self.joins_previous = False
        self.attach_next = False

    def run(self, text: str) -> list[Action]:
        for match in _PHRASE.finditer(text):
            body, delim, space = match["body"], match["delim"], match["space"]
            if not (body or delim or space):
                continue
            found = self._command_at_end(body)
            if found is None:
                self._type(body + delim + space)
            else:
                command, prefix = found
                self._apply(command, prefix, space)
        self._flush()
        return self.actions

    def _command_at_end(self, body: str) -> tuple[Command, str] | None:
        words = body.split()
        for count in range(min(_LONGEST, len(words)), 0, -1):
            phrase = " ".join(_normalise(word) for word in words[-count:]).replace("-", " ")
            command = COMMANDS.get(phrase)
            if command is None or not _enabled(command, self.settings):
                continue
            if count < len(words) and command.kind in _NOUN_LIKE and _normalise(words[-count - 1]) in DETERMINERS:
                continue  # "a period", "the colon", "a new line": the words are a noun here
            return command, _strip_last_words(body, count)
        return None

    def _apply(self, command: Command, prefix: str, space: str) -> None:
        if command.kind is Kind.UNDO:
            self._undo(has_prefix=bool(prefix.strip()))
            self.attach_next = True
            return
        self._type(prefix)
        if command.kind is Kind.CLOSING:
            self._close(command.output)
            self._type(space)
        elif command.kind is Kind.OPENING:
            if self.buffer and not self.buffer[-1].isspace() and not self.attach_next:
                self.buffer += " "
            self.buffer += command.output
            self.attach_next = True
        elif command.kind is Kind.BREAK:
            self.buffer = self.buffer.rstrip(" ")
            self.buffer += command.output
            self.attach_next = True
        else:
            self.buffer = self.buffer.rstrip(" ")
            self._flush()
            self.actions.append(PressKey(command.output))
            self.attach_next = True

    def _close(self, mark: str) -> None:
        self.buffer = self.buffer.rstrip(" ")
        if mark != '"' and self.buffer and self.buffer[-1] in _PHRASE_END:
            self.buffer = self.buffer[:-1]  # "How are you? Question mark." gives one "?"
        if not self.buffer and not self.actions:
            self.joins_previous = True
        self.buffer += mark
        self.attach_next = False

    def _undo(self, has_prefix: bool) -> None:
        """Drop what this dictation said so far; if it said nothing yet, undo the previous dictation."""
        undos = (UndoLastDictation, EraseDictation)
        last_undo = max((i for i, a in enumerate(self.actions) if isinstance(a, undos)), default=-1)
        if has_prefix or self.buffer or len(self.actions) > last_undo + 1 or self.continues:
            del self.actions[last_undo + 1 :]
            self.buffer = ""
            if self.continues and not any(isinstance(a, EraseDictation) for a in self.actions):
                self.actions.append(EraseDictation())
        else:
            self.actions.append(UndoLastDictation())

    def _type(self, text: str) -> None:
        if self.attach_next:
            text = text.lstrip()
            if not text:
                return
            self.attach_next = False
        self.buffer += text

    def _flush(self) -> None:
        text = _replace(self.buffer, self.settings.replacements)
        if text:
            previous = self.actions[-1] if self.actions else None
            if isinstance(previous, TypeText):
                self.actions[-1] = TypeText(previous.text + text, previous.joins_previous)
            else:
                self.actions.append(TypeText(text, self.joins_previous and not self.actions))
        self.buffer = ""


def _strip_last_words(body: str, count: int) -> str:
    """``body`` without its last ``count`` words, keeping the whitespace before them."""
    for _ in range(count):
        body = body.rstrip()
        body = body[: len(body) - len(body.split()[-1])]
    return body


def _replace(text: str, replacements: Mapping[str, str]) -> str:
    for spoken in sorted(replacements, key=len, reverse=True):
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, spoken.split())) + r"(?!\w)"
        text = re.compile(pattern, re.IGNORECASE).sub(_literal(replacements[spoken]), text)
    return text


def _literal(written: str) -> Callable[[re.Match[str]], str]:
    """A replacement taken as written: no backslash or group references interpreted."""
    return lambda _match: written


def phrases(settings: CommandSettings | None = None) -> Iterable[str]:
    """Every spoken command that is on with ``settings``, for ``voxkey config`` and the docs."""
    settings = settings or CommandSettings()
    return [phrase for phrase, command in COMMANDS.items() if _enabled(command, settings)]
