"""A dictation's way from the microphone to the host: recording, transcription, and the order of output.

The daemon's loop tells the pipeline what the user asked for (start, stop,
cancel, undo, Eject) and what the other threads reported (recording ended,
transcribed, a phrase ready, a job typed); the pipeline keeps the dictations
in flight and hands the typist the next job when its turn comes. It is used by
the main loop only; the transcriber thread it runs reads finished recordings
from its own queue and answers with events.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from voxkey.asr import PhraseTranscriber
from voxkey.capture import Recorder, RecordingEnded
from voxkey.config import Config
from voxkey.dictation import DictationSession, PhraseResult
from voxkey.errors import VoxkeyError
from voxkey.gestures import PRESS_AFTER_STOP, RecordingView, Situation
from voxkey.ordering import Dictation, OutputQueue
from voxkey.passkey import PasskeyEngine, PasskeyRequest
from voxkey.status import Counters
from voxkey.text import commands
from voxkey.typist import EjectRequest, OutputDone, Typist, UndoRequest
from voxkey.ui import LightState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcribed:
    number: int
    actions: list[commands.Action]
    error: VoxkeyError | None = None
    spoken_code: str | None = None
    """A code recording's text (``voxkey.passkey``): for ``on_code``, never typed."""


@dataclass(frozen=True)
class PhraseReady:
    """A phrase of a dictation still being recorded or finished: its text, ready to type."""

    number: int
    phrase: PhraseResult


@dataclass
class Feedback:
    """How the pipeline shows what happened: the daemon's light and its error pattern."""

    flash: Callable[[LightState], None]
    show_error: Callable[[], None]


class Pipeline:
    """Dictations from the press to the host (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        recorder: Recorder,
        typist: Typist,
        counters: Counters,
        post: Callable[[Transcribed | PhraseReady], None],
        feedback: Feedback,
    ) -> None:
        self.config = config
        """Replaced by the daemon on reload, while nothing is in flight."""
        self.engine: PhraseTranscriber | None = None
        self.recorder = recorder
        self.typist = typist
        self.counters = counters
        self.post = post
        self.feedback = feedback
        self.recording: Dictation | None = None
        """The dictation being recorded (until its recording ended)."""
        self.last_stopped: Dictation | None = None
        """The dictation whose recording ended last: a press right after may cancel it."""
        self.output = OutputQueue()
        self.typing = False
        """The typist has a job."""
        self.something_out = False
        """A job was typed, or a dictation left with nothing to type (``exit_when_idle`` waits for this)."""
        self.on_code: Callable[[str, PasskeyRequest], None] = lambda text, said_for: None
        """Gets the text of a code recording and the request it was said for (the daemon's ``SpokenPasskey``)."""
        self._code_recordings: dict[int, PasskeyRequest] = {}
        """The recordings that are a spoken pairing code, by number, with the request each was said for:
        transcribed for ``on_code``, never typed."""
        self._transcribing: dict[int, Dictation] = {}
        self._transcribe_queue: queue.Queue[Dictation | None] = queue.Queue()
        self._transcriber: threading.Thread | None = None

    def start(self, engine: PhraseTranscriber) -> None:
        self.engine = engine
        self._transcriber = threading.Thread(target=self._transcribe, name="voxkey-transcriber", daemon=True)
        self._transcriber.start()
        self.typist.start()

    def idle(self) -> bool:
        return (
            self.recording is None
            and not self._transcribing
            and not self.output
            and not self.typing
            and not self.recorder.capturing
        )

    def listening(self) -> bool:
        return self.recording is not None and not self.recording.stop_requested

    def in_flight(self) -> bool:
        """Something said is not typed yet (the LED says "transcribing")."""
        return self.recording is not None or bool(self._transcribing) or self.output.in_flight()

    def situation(self) -> Situation:
        """What the gestures need to know of the recordings (the daemon adds pairing and stopping)."""
        recording, latest = self.recording, self.last_stopped
        return Situation(
            recording=None
            if recording is None
            else RecordingView(recording.pressed_at, recording.stopped_at, recording.speech_seen),
            last_stopped_at=None if latest is None or latest.cancelled else latest.stopped_at,
        )

    def close(self) -> None:
        """Drop the recording, finish what was handed to the threads, stop them."""
        if self.recording is not None:
            self.abort_recording()
        self.recorder.close()
        if self._transcriber is not None:
            self._transcribe_queue.put(None)
            self.typist.stop()
            self._transcriber.join(timeout=30)
            self._transcriber = None

    # --- recording ------------------------------------------------------------------------------

    def start_recording(self, at: float, code_for: PasskeyRequest | None = None) -> None:
        """Listen from ``at``; with ``code_for`` the recording is the pairing code that request asks for, not text."""
        assert self.engine is not None
        try:
            self.recorder.open()
        except VoxkeyError as exc:
            self._failed(exc)
            return
        number = self.output.number()
        engine: PhraseTranscriber = self.engine
        on_phrase = self._phrase_sender(number) if self.config.dictation.type_while_talking else None
        if code_for is not None:
            self._code_recordings[number] = code_for
            engine, on_phrase = PasskeyEngine(self.engine), None
        session = DictationSession(engine, self.config.vad, self.config.audio, on_phrase=on_phrase)
        session.start()
        recording = Dictation(number, at, session)
        self.recording = recording
        self.output.add(recording)  # its phrases may be typed while it records
        self.recorder.capture(recording)
        log.debug("dictation %d: listening", recording.number)

    def _phrase_sender(self, number: int) -> Callable[[PhraseResult], None]:
        return lambda phrase: self.post(PhraseReady(number, phrase))

    def stop_recording(self, at: float) -> None:
        recording = self.recording
        if recording is None or recording.stop_requested:
            return
        recording.stop_requested = True
        recording.stopped_at = at
        self.recorder.stop_listening(post_roll=True)
        recording.session.release()
        log.debug("dictation %d: stopped after %.1f s", recording.number, at - recording.pressed_at)

    def silence(self, number: int, at: float) -> None:
        """``auto`` mode: the recording ``number`` heard enough silence."""
        if self.recording is not None and self.recording.number == number:
            log.info("auto mode: silence, stopping")
            self.stop_recording(at)

    def abort_recording(self) -> None:
        recording = self.recording
        if recording is None:
            return
        self.output.drop(recording)
        self.recording = None
        self._code_recordings.pop(recording.number, None)
        self.recorder.stop_listening(post_roll=False)
        self.recorder.finish()

    def recording_ended(self, event: RecordingEnded, at: float) -> bool:
        """Its capture thread is done; True if it ended by itself (length limit, audio failure), not asked to."""
        recording = self.recording
        if recording is None or recording.number != event.number:
            return False  # an aborted recording's capture thread finishing
        self.recording = None
        self.recorder.finish()
        by_itself = recording.stopped_at is None
        if by_itself:
            recording.stopped_at = at
        if event.truncated:
            log.warning("dictation %d reached the maximum length (audio.max_recording_s)", recording.number)
            self.feedback.flash(LightState.LIMIT)
        if event.error is not None:
            self._failed(event.error)
        self.counters.dictations += 1
        self.last_stopped = recording
        self._transcribing[recording.number] = recording
        self._transcribe_queue.put(recording)
        return by_itself

    # --- what the user asked to go out ----------------------------------------------------------

    def cancel_latest(self, why: str) -> bool:
        """Cancel the recording, or else the newest dictation not typed yet; False if there was nothing."""
        if self.recording is not None:
            self.abort_recording()
            self.counters.cancelled += 1
            log.info("recording cancelled (%s)", why)
            self.feedback.flash(LightState.CANCELLED)
            return True
        newest = self.output.newest_dictation()
        if newest is not None:
            self.cancel(newest, why)
        return newest is not None

    def cancel(self, dictation: Dictation, why: str) -> None:
        """Nothing more of it is typed, and what it typed already is erased (in order with the rest)."""
        self.output.drop(dictation)
        self.counters.cancelled += 1
        outcome = "erasing what it typed" if dictation.handed else "nothing typed"
        log.info("dictation %d cancelled (%s): %s", dictation.number, why, outcome)
        self.feedback.flash(LightState.CANCELLED)

    def cancel_stopped(self) -> None:
        """A press right after a dictation stopped: cancel it."""
        if self.last_stopped is not None:
            self.cancel(self.last_stopped, PRESS_AFTER_STOP)

    def request_undo(self) -> None:
        self.output.add(UndoRequest(self.output.number()))
        self.feedback.flash(LightState.UNDO)

    def request_eject(self) -> None:
        self.output.add(EjectRequest(self.output.number()))
        log.info("eject requested (brings back an iPad's on-screen keyboard)")

    # --- transcription and typing ---------------------------------------------------------------

    def _transcribe(self) -> None:
        """The transcriber thread: finishes recordings in order."""
        while True:
            dictation = self._transcribe_queue.get()
            if dictation is None:
                return
            if dictation.cancelled:
                self.post(Transcribed(dictation.number, []))
                continue
            try:
                text = dictation.session.finish()
                if dictation.number in self._code_recordings:
                    self.post(Transcribed(dictation.number, [], spoken_code=text))
                    continue
                streamed = dictation.session.on_phrase is not None
                actions = commands.interpret(text, self.config.commands) if text and not streamed else []
                self.post(Transcribed(dictation.number, actions))
            except VoxkeyError as exc:
                self.post(Transcribed(dictation.number, [], exc))
            except Exception as exc:  # never let one bad dictation kill the daemon
                log.exception("transcription failed")
                self.post(Transcribed(dictation.number, [], VoxkeyError(f"transcription failed: {exc}")))

    def transcribed(self, event: Transcribed) -> None:
        dictation = self._transcribing.pop(event.number, None)
        if dictation is None:
            return
        if event.error is not None:
            self._failed(VoxkeyError(f"dictation {event.number}: {event.error}"))
        dictation.finished = True
        said_for = self._code_recordings.pop(event.number, None)
        if said_for is not None:
            if not dictation.cancelled:
                self.on_code(event.spoken_code or "", said_for)
            return
        if event.actions and not dictation.cancelled:
            dictation.pieces.append(event.actions)
            dictation.phrases += 1
        if not dictation.phrases and not dictation.cancelled:
            self.counters.empty += 1
            log.info("dictation %d: nothing to type", dictation.number)

    def phrase_ready(self, event: PhraseReady) -> None:
        """A phrase of a dictation: typed as soon as everything before it is."""
        dictation = self.output.dictation(event.number)
        if dictation is None or dictation.cancelled or not event.phrase.addition:
            return
        actions = commands.interpret(event.phrase.addition, self.config.commands, continues=dictation.phrases > 0)
        dictation.phrases += 1
        if actions:
            dictation.pieces.append(actions)

    def release_ready_output(self) -> None:
        """Hand the typist the next piece of text, key or erase, in order; one at a time."""
        if self.typing:
            return
        job = self.output.next_job(self._dictation_out)
        if job is not None:
            self.typing = True
            self.typist.submit(job)

    def _dictation_out(self, dictation: Dictation) -> None:
        if dictation.handed:
            self.counters.typed += 1  # all of it typed
        else:
            self.something_out = True

    def output_done(self, event: OutputDone) -> None:
        self.typing = False
        self.something_out = True
        self.counters.undone += event.undone
        self.counters.ejected += event.ejected
        if event.error is not None:
            self._failed(event.error)

    def _failed(self, error: VoxkeyError) -> None:
        log.error("%s", error)
        self.counters.errors += 1
        self.feedback.show_error()
