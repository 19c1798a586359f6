"""The microphone side of a recording: the audio source, and one capture thread per recording.

``Recorder`` (the main loop's) opens the source when listening starts and
closes it when it ends, unless ``dictation.keep_microphone_open`` keeps it
open for pre-roll. Its capture thread moves blocks from the source into the
``DictationSession`` (which transcribes finished phrases in its own worker
while the user is still talking), ends the recording once the button is up and
the speaker is not mid-phrase, and watches speech activity for ``auto`` mode
and the long-press rule. It tells the main loop only through ``post``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voxkey.audio import SAMPLE_RATE, AudioSource, Samples
from voxkey.config import Config
from voxkey.errors import AudioError, VoxkeyError
from voxkey.vad import speech_ms

if TYPE_CHECKING:
    from voxkey.dictation import DictationSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingEnded:
    number: int
    truncated: bool
    error: AudioError | None


@dataclass(frozen=True)
class SilenceReached:
    """``auto`` mode: speech was followed by ``auto_silence_s`` of silence (or nothing was said)."""

    number: int


Post = Callable[[RecordingEnded | SilenceReached], None]


class Recording(Protocol):
    """What the capture thread reads and writes of the dictation it records."""

    number: int
    session: DictationSession
    speech_seen: bool

    @property
    def cancelled(self) -> bool: ...


class SpeechActivity:
    """Follows voiced audio in a recording, for ``auto`` mode and the long-press rule."""

    def __init__(self, frame_ms: int, aggressiveness_settings: Any, min_speech_ms: int) -> None:
        self.vad_settings = aggressiveness_settings
        self.frame_len = SAMPLE_RATE * frame_ms // 1000
        self.min_speech_ms = min_speech_ms
        self.voiced_ms = 0
        self.position_s = 0.0
        self.last_voice_s = 0.0
        self._pending: list[Samples] = []
        self._pending_len = 0

    @property
    def speech_seen(self) -> bool:
        return self.voiced_ms >= self.min_speech_ms

    def feed(self, block: Samples) -> None:
        self._pending.append(block)
        self._pending_len += block.size
        if self._pending_len < self.frame_len:
            return
        data = np.concatenate(self._pending)
        usable = data.size - data.size % self.frame_len
        voiced = speech_ms(data[:usable], self.vad_settings)
        self.position_s += usable / SAMPLE_RATE
        if voiced:
            self.voiced_ms += voiced
            self.last_voice_s = self.position_s
        rest = data[usable:]
        self._pending = [rest] if rest.size else []
        self._pending_len = rest.size

    def silence_s(self) -> float:
        return self.position_s - self.last_voice_s


def capture(recording: Recording, source: AudioSource, config: Config, post: Post) -> None:
    """The body of the capture thread: runs until the source stops delivering, then posts ``RecordingEnded``."""
    vad = config.vad
    activity = SpeechActivity(vad.frame_ms, vad, vad.min_speech_ms)
    dictation = config.dictation
    auto = config.button.mode == "auto"
    asked_to_stop = False
    min_post_roll = config.audio.min_post_roll_ms * SAMPLE_RATE // 1000
    fed = 0
    over = False
    try:
        for block in source.frames():
            if recording.cancelled or over:
                continue
            recording.session.feed(block)
            fed += block.size
            stopped_at = source.buffer.recorded_at_stop
            if stopped_at is not None and fed >= stopped_at + min_post_roll and recording.session.settled:
                # Released, and the speaker is not mid-phrase: the rest of the post-roll could only add
                # silence. The recording ends here (a rule on the audio, so the text stays the same).
                over = True
                source.stop_listening(post_roll=False)
                continue
            activity.feed(block)
            recording.speech_seen = activity.speech_seen
            if auto and not asked_to_stop:
                silent = activity.silence_s()
                if (activity.speech_seen and silent >= dictation.auto_silence_s) or (
                    not activity.speech_seen and activity.position_s >= dictation.auto_no_speech_s
                ):
                    asked_to_stop = True
                    post(SilenceReached(recording.number))
    except Exception as exc:  # the loop must hear about any failure, or it waits forever
        log.exception("capture failed")
        post(RecordingEnded(recording.number, False, AudioError(f"audio capture failed: {exc}")))
        return
    post(RecordingEnded(recording.number, source.buffer.truncated, source.error))


class Recorder:
    """The audio source and the capture thread of the recording in progress (used by the main loop only)."""

    def __init__(self, config: Config, open_source: Callable[[], AudioSource], post: Post) -> None:
        self.config = config
        """Replaced on reload, between recordings."""
        self.open_source = open_source
        self.post = post
        self._source: AudioSource | None = None
        self._thread: threading.Thread | None = None

    @property
    def capturing(self) -> bool:
        """A capture thread has not been joined yet."""
        return self._thread is not None

    def check(self) -> None:
        """Open the source once, so a missing microphone shows at start, not at the first press."""
        source = self.open_source()
        source.open()
        if self.config.dictation.keep_microphone_open:
            self._source = source
        else:
            source.close()

    def open(self) -> None:
        """Start listening now; ``VoxkeyError`` (and the source left clean) if the audio fails."""
        self.join()
        source: AudioSource | None = None
        try:
            source = self._source or self.open_source()
            # Listening starts before the device opens, so its very first block belongs to the recording.
            source.start_listening()
            source.open()
        except VoxkeyError:
            if source is not None:
                source.stop_listening(post_roll=False)  # the next press starts a clean recording
                if source is not self._source:
                    source.close()
            raise
        self._source = source

    def capture(self, recording: Recording) -> None:
        """Feed what the open source hears into ``recording`` from its own thread."""
        assert self._source is not None
        self._thread = threading.Thread(
            target=capture, args=(recording, self._source, self.config, self.post), name="voxkey-capture", daemon=True
        )
        self._thread.start()

    def stop_listening(self, post_roll: bool) -> None:
        """Stop taking sound in; with ``post_roll`` the capture ends once the speaker is done."""
        if self._source is not None:
            self._source.stop_listening(post_roll=post_roll)

    def finish(self) -> None:
        """The recording is over: join its capture thread and close the source unless it is kept open."""
        self.join()
        if self._source is not None and not self.config.dictation.keep_microphone_open:
            self._source.close()
            self._source = None

    def join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
            if thread.is_alive():
                log.error("audio capture did not stop; the audio device may be hung")

    def close(self) -> None:
        """Close the source, also one kept open; ``check`` or ``start`` open it again."""
        self.join()
        if self._source is not None:
            self._source.close()
            self._source = None
