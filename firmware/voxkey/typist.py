"""The typist: the one thread that types, and the ledger of what it typed (what undo erases).

The daemon decides *what* goes out and in which order; it hands the typist one
job at a time (a piece of a dictation's text, an undo, an erase, Eject) and
hears back an ``OutputDone`` for each. Everything that touches the host lives
here and is used by the typist's thread only: the ``Keyboard`` (text not yet
typed), the host link, the record of what the last dictation delivered and the
text typed last (for the space between dictations). The main thread opens and
closes the keyboard only while no job is in flight (at start, on reload, at
the end).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from voxkey.clock import MONOTONIC, Clock
from voxkey.config import Config
from voxkey.errors import HostUnavailableError, KeptTextDropped, TransportError, VoxkeyError
from voxkey.hid import CONSUMER_EJECT
from voxkey.kept import KeptText, ResumePolicy
from voxkey.keymap import Layout, reports_for_strokes
from voxkey.text import commands
from voxkey.text.cleanup import CLOSING_PUNCTUATION
from voxkey.transports.base import Keyboard, ReportLink
from voxkey.transports.host import HostLink
from voxkey.typing_policy import prepare_text, typing_layout

log = logging.getLogger(__name__)


# --- jobs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypePiece:
    """A piece of dictation ``number``'s text, as actions (text, key commands, "scratch that")."""

    number: int
    actions: list[commands.Action]


@dataclass(frozen=True)
class UndoRequest:
    """Erase what the last dictation typed."""

    number: int


@dataclass(frozen=True)
class EjectRequest:
    """The Eject media key, in order with the text before it."""

    number: int


@dataclass(frozen=True)
class EraseRequest:
    """Erase what a cancelled dictation typed (it was typed while the user talked, or before the cancel)."""

    number: int


Job = TypePiece | UndoRequest | EjectRequest | EraseRequest


@dataclass(frozen=True)
class HostWaiting:
    """Typing is blocked waiting for a host (or goes on again): the LED says so."""

    waiting: bool


@dataclass(frozen=True)
class TextHeld:
    """Kept text started (or stopped) waiting for the user's tap (``voxkey.kept``)."""

    held: bool


@dataclass(frozen=True)
class OutputDone:
    """A job is finished (or failed with ``error``); what it undid and ejected, for the counters."""

    number: int
    error: VoxkeyError | None = None
    undone: int = 0
    ejected: int = 0


@dataclass
class TypedRecord:
    """Characters a dictation typed, for undo."""

    number: int
    delivered: int = 0
    text_before: str = ""
    """What was typed before this dictation, so the space rule is right again after an undo."""


class Typist:
    """Types jobs in order on its own thread; ``on_done`` hears of each one (from that thread)."""

    def __init__(
        self,
        config: Config,
        on_done: Callable[[OutputDone], None],
        clock: Clock = MONOTONIC,
        on_held: Callable[[bool], None] | None = None,
    ) -> None:
        self.config = config
        """Replaced by the main thread on reload, while no job is in flight."""
        self.on_done = on_done
        self.kept = KeptText(ResumePolicy(config.output.resume_within_s), clock, on_held)
        """Where text that waited for a host may go (``voxkey.kept``); the main loop taps, drops and stops it."""
        self.keyboard: Keyboard | None = None
        self.last_typed_text = ""
        """The text typed last, for the space rule (typist thread; read by others once it has stopped)."""
        self._host_link: HostLink | None = None
        self._layout: Layout | None = None
        self._typed: TypedRecord | None = None
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._undone = 0
        self._ejected = 0
        self._dropped_from: int | None = None
        """A dictation whose kept text was dropped: the rest of it must not go out without its beginning."""

    # --- the main thread's side ------------------------------------------------------------------

    def open(self, links: list[ReportLink], on_waiting: Callable[[bool], None]) -> None:
        """Type over ``links`` from now on (with ``config.output``'s layout and host wait)."""
        output = self.config.output
        base = Layout.load(output.layout)
        self._layout = base
        self.kept.policy = ResumePolicy(output.resume_within_s)
        self._host_link = HostLink(links, on_waiting, self.kept)
        self.keyboard = Keyboard(
            self._host_link, typing_layout(base, output.unsupported_characters), output.host_wait_s
        )

    def close_output(self) -> None:
        """Close the keyboard (it releases every key); ``open`` may follow."""
        if self.keyboard is not None:
            self.keyboard.close()
            self.keyboard = None

    @property
    def link_name(self) -> str:
        return self.keyboard.link.name if self.keyboard else "none"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="voxkey-typist", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def stop(self, timeout: float = 30) -> None:
        """Finish the jobs handed over, then end the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=timeout)
            self._thread = None

    # --- the typist's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self.on_done(self.perform(job))

    def perform(self, job: Job) -> OutputDone:
        """Carry out one job; never raises (a broken link must not kill the typist)."""
        self._undone = self._ejected = 0
        error: VoxkeyError | None = None
        try:
            if isinstance(job, UndoRequest):
                self._undo()
            elif isinstance(job, EraseRequest):
                self._erase_cancelled(job.number)
            elif isinstance(job, EjectRequest):
                self._eject()
            else:
                self._type_actions(job.number, job.actions)
        except KeptTextDropped as exc:
            self._dropped_from = job.number
            self._drop_kept(str(exc))
            error = None if exc.by_user else exc
        except HostUnavailableError as exc:
            self._dropped_from = job.number
            wait_s = self.config.output.host_wait_s
            dropped = self._drop_kept(f"no host took it within output.host_wait_s ({wait_s:g} s)")
            cause = exc.__cause__ if isinstance(exc.__cause__, HostUnavailableError) else exc
            error = HostUnavailableError(f"{cause}; {dropped} characters not typed were dropped (see the log)")
        except VoxkeyError as exc:
            error = exc
        except Exception as exc:
            log.exception("typing failed")
            error = TransportError(f"typing failed: {exc}")
        return OutputDone(job.number, error, self._undone, self._ejected)

    def _drop_kept(self, why: str) -> int:
        """Text that waited for a host and will not be typed: dropped, and logged with its characters.

        Never silently: the journal (standard error under systemd) gets the text, so a user who
        stopped voxkey or let the wait expire can still copy it from ``journalctl -u voxkey``.
        """
        assert self.keyboard is not None and self._host_link is not None
        reports = self._host_link.discard_kept()
        unsent = self.keyboard.unsend(reports)  # written, never acknowledged: not delivered after all
        if unsent and self._typed is not None:
            self._typed.delivered = max(0, self._typed.delivered - len(unsent))
        dropped = unsent + self.keyboard.discard_pending()
        self.kept.settled()
        log.warning(
            "%d characters not typed (%s) were dropped%s: %r",
            len(dropped),
            why,
            f", with {len(reports)} key reports kept for a Bluetooth host" if reports else "",
            dropped,
        )
        return len(dropped)

    def _type_actions(self, number: int, actions: list[commands.Action]) -> None:
        assert self.keyboard is not None and self._layout is not None
        if number == self._dropped_from:
            log.warning("dictation %d: its kept text was dropped, so its rest is too: %r", number, actions)
            return
        record = self._typed if self._typed is not None and self._typed.number == number else None
        if record is None:
            record = TypedRecord(number, text_before=self.last_typed_text)
        try:
            for action in actions:
                if isinstance(action, commands.UndoLastDictation):
                    self._undo()
                elif isinstance(action, commands.EraseDictation):
                    self._erase(record)
                elif isinstance(action, commands.PressKey):
                    self._press_key(action.name)
                else:
                    text = prepare_text(action.text, self._layout, self.config.output.unsupported_characters)
                    if self.config.dictation.space_between and not action.joins_previous:
                        text = self._with_separator(text)
                    if text:
                        self._type_counted(text, record)
        finally:
            self._typed = record  # also when the host went away mid-text: undo erases what of it arrived

    def _with_separator(self, text: str) -> str:
        """A space before the next piece, unless one is there or it starts with punctuation that closes.

        A dictation's own pieces carry their spacing (``PhraseResult.addition``); a piece that starts with
        its full stop (held back at a short pause, see ``DictationSession``) must not get a space before it.
        """
        previous = self.last_typed_text
        attaches = not text or text[0].isspace() or text[0] in CLOSING_PUNCTUATION
        if previous and not previous[-1].isspace() and not attaches:
            return " " + text
        return text

    def _host_after_pending_text(self) -> tuple[HostLink, float]:
        """The host link once the text before has reached it, and the deadline for what follows.

        Key commands and Eject are sent past ``Keyboard``, so they must not overtake its text.
        """
        assert self.keyboard is not None and self._host_link is not None
        self.keyboard.flush()
        deadline = time.monotonic() + self.config.output.host_wait_s
        self._host_link.wait_for_host(deadline)
        return self._host_link, deadline

    def _press_key(self, name: str) -> None:
        """A key command ("press enter"): pending text first, then the chord, outside undo's count."""
        assert self._layout is not None
        link, deadline = self._host_after_pending_text()
        for report in reports_for_strokes(commands.key_command_strokes(name, self._layout)):
            link.send(report, deadline)
        self.last_typed_text = ""

    def _type_counted(self, text: str, record: TypedRecord) -> None:
        """Type and count what this dictation delivered (earlier leftovers go first and are not counted)."""
        assert self.keyboard is not None
        leftovers = len(self.keyboard.pending_text)
        before = self.keyboard.delivered_chars
        try:
            self.keyboard.type(text)
        finally:
            delivered = self.keyboard.delivered_chars - before
            if leftovers and self._typed is not None:
                self._typed.delivered += min(leftovers, delivered)
            record.delivered += max(0, delivered - leftovers)
            if delivered:
                self.last_typed_text = text[: max(0, delivered - leftovers)] or self.last_typed_text

    def _eject(self) -> None:
        """The Eject media key, after the text before it has reached the host; outside undo's count."""
        link, deadline = self._host_after_pending_text()
        link.send_consumer(CONSUMER_EJECT, deadline)
        self._ejected += 1
        log.info("eject sent over %s", link.active.name)

    def _undo(self) -> None:
        """Erase exactly what the last dictation typed: its undelivered rest is dropped, the rest backspaced."""
        record, self._typed = self._typed, None
        if record is None:
            log.info("undo: nothing to undo")
            return
        self._erase(record)
        self._undone += 1

    def _erase_cancelled(self, number: int) -> None:
        """A dictation cancelled after some of it was typed: erase that, as undo would."""
        if self._typed is None or self._typed.number != number:
            return
        record, self._typed = self._typed, None
        self._erase(record)

    def _erase(self, record: TypedRecord) -> None:
        assert self.keyboard is not None
        dropped = self.keyboard.discard_pending()
        if dropped:
            log.info("dropped %d characters not yet typed", len(dropped))
        erased, record.delivered = record.delivered, 0
        if erased:
            self.keyboard.type("\b" * erased)
        self.last_typed_text = record.text_before
        log.info("erased %d characters of dictation %d", erased, record.number)
