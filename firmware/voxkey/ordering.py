"""The order in which things reach the host: dictations, their pieces, undo, erase and Eject.

Everything the user asked to go out waits in one queue, in the order it was
asked for. A dictation takes its place when its recording starts, so the
phrases transcribed while the user still talks are typed before anything asked
for later; its pieces go to the typist one at a time, and the next item only
once it is transcribed to the end. A cancelled dictation leaves the queue, or,
if some of it went out already, its place becomes an erase. Used by the main
loop only; no threads, no audio, no time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voxkey.text import commands
from voxkey.typist import EjectRequest, EraseRequest, Job, TypePiece, UndoRequest

if TYPE_CHECKING:
    from voxkey.dictation import DictationSession


@dataclass
class Dictation:
    """One recording and its text on their way to the host; the main loop's but where a field says otherwise."""

    number: int
    pressed_at: float
    session: DictationSession
    stopped_at: float | None = None
    """When it was asked to stop, or (stopping by itself) when its recording ended."""
    stop_requested: bool = False
    cancel_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    """Set by the main loop when it is cancelled; the capture and transcriber threads stop working on it."""
    finished: bool = False
    """Transcribed to the end: no more pieces will come."""
    pieces: deque[list[commands.Action]] = dataclasses.field(default_factory=deque)
    """Actions of phrases transcribed but not yet handed to the typist, in order."""
    phrases: int = 0
    handed: bool = False
    """Some of its text went to the typist (a cancel must erase it)."""
    speech_seen: bool = False
    """Voice was heard in it: written by its capture thread only."""

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


OutputItem = Dictation | UndoRequest | EjectRequest | EraseRequest


class OutputQueue:
    """What goes to the host, in order; ``next_job`` gives the typist the head when it is ready."""

    def __init__(self) -> None:
        self._items: deque[OutputItem] = deque()
        self._numbers = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[OutputItem]:
        return iter(self._items)

    def number(self) -> int:
        """The next number for a dictation or a request (one sequence: they are told apart by it)."""
        self._numbers += 1
        return self._numbers

    def add(self, item: OutputItem) -> None:
        self._items.append(item)

    def dictation(self, number: int) -> Dictation | None:
        return next((d for d in self._items if isinstance(d, Dictation) and d.number == number), None)

    def newest_dictation(self) -> Dictation | None:
        """The newest dictation not cancelled yet, for the cancel button."""
        return next((d for d in reversed(self._items) if isinstance(d, Dictation) and not d.cancelled), None)

    def in_flight(self) -> bool:
        """A dictation waits to be transcribed or typed (the LED says "transcribing")."""
        return any(isinstance(item, Dictation) and not item.cancelled for item in self._items)

    def drop(self, dictation: Dictation) -> None:
        """Nothing more of it goes out; what of it went out already is erased, in its place in the order."""
        dictation.cancel_event.set()
        dictation.pieces.clear()
        with contextlib.suppress(Exception):
            dictation.session.cancel()
        if not dictation.handed:
            return
        erase = EraseRequest(dictation.number)
        if dictation in self._items:
            self._items[self._items.index(dictation)] = erase
        else:
            self._items.append(erase)

    def next_job(self, finished: Callable[[Dictation], None]) -> Job | None:
        """The next piece of text, key or erase for the typist, if its turn has come.

        ``finished(dictation)`` is told of each dictation that leaves the queue
        transcribed to the end (``handed`` says whether any of it was typed).
        """
        while self._items:
            item = self._items[0]
            if not isinstance(item, Dictation):
                self._items.popleft()
                return item
            if item.cancelled:
                self._items.popleft()
                continue
            if item.pieces:
                item.handed = True
                return TypePiece(item.number, item.pieces.popleft())
            if not item.finished:
                return None  # more phrases to come
            self._items.popleft()
            finished(item)
        return None
