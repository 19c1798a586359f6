"""One dictation: audio in while the button is held, clean text out right after release.

The daemon drives it like this (any audio source from ``voxkey.audio``)::

    engine = WhisperEngine(AsrSettings(...))          # load once at start-up; reuse for every dictation
    session = DictationSession(engine, vad_settings, audio_settings)
    session.start()                                   # button pressed
    for block in source.frames():                     # capture thread; ends after release + post-roll
        session.feed(block)                           # cheap: VAD only, never waits for whisper
    text = session.finish()                           # only the last phrase is still to transcribe
    # session.result has per-phrase details and timings

Why streaming: the VAD closes a phrase at each pause, and a worker thread
transcribes it at once while the user keeps talking. At release only the
phrase still open has to be transcribed, so the wait after release does not
grow with the length of the dictation (as long as whisper keeps up with
speech, i.e. its real-time factor is below one).

Nothing is typed for a recording shorter than ``AudioSettings.min_recording_ms``
(a tap on the button) or without speech (VAD finds no phrase, or whisper's
output is a known hallucination).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from voxkey.asr import WhisperEngine
from voxkey.audio import SAMPLE_RATE, AudioSettings, Samples, WavFileSource
from voxkey.errors import VoxkeyError
from voxkey.text.cleanup import clean_phrase, join_phrases
from voxkey.vad import Phrase, PhraseSegmenter, VadSettings

log = logging.getLogger(__name__)


@dataclass
class PhraseResult:
    index: int
    start_s: float
    audio_s: float
    raw: str  # whisper's words
    text: str  # after clean-up ("" when it was a hallucination)
    compute_s: float


@dataclass
class DictationResult:
    text: str
    audio_s: float  # recording length
    phrases: list[PhraseResult] = field(default_factory=list)
    compute_s: float = 0.0  # whisper time, all phrases
    finish_s: float = 0.0  # time spent inside finish(): the wait the user feels after the audio ends
    too_short: bool = False


_STOP = None


class DictationSession:
    """Streaming transcription of one recording; see the module docstring for the calling pattern.

    ``feed`` must be called from one thread; ``finish``/``cancel`` from any.
    ``on_phrase`` is called from the worker thread as each phrase is done
    (e.g. to show progress on an LED); it must be quick.
    """

    def __init__(
        self,
        engine: WhisperEngine,
        vad: VadSettings | None = None,
        audio: AudioSettings | None = None,
        on_phrase: Callable[[PhraseResult], None] | None = None,
    ) -> None:
        self.engine = engine
        self.vad_settings = vad or VadSettings()
        self.audio_settings = audio or AudioSettings()
        self.on_phrase = on_phrase
        self.result: DictationResult | None = None
        self._segmenter: PhraseSegmenter | None = None
        self._queue: queue.Queue[Phrase | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._results: list[PhraseResult] = []
        self._error: BaseException | None = None
        self._cancelled = threading.Event()

    @property
    def active(self) -> bool:
        return self._segmenter is not None

    def start(self) -> None:
        if self.active:
            raise RuntimeError("dictation session already started")
        self._segmenter = PhraseSegmenter(self.vad_settings)
        self._queue = queue.Queue()
        self._results = []
        self._error = None
        self._cancelled.clear()
        self.result = None
        self._worker = threading.Thread(target=self._work, name="voxkey-asr-worker", daemon=True)
        self._worker.start()

    def feed(self, samples: Samples) -> None:
        """Add captured audio; closed phrases go to the worker straight away."""
        if self._segmenter is None:
            raise RuntimeError("call start() before feed()")
        for phrase in self._segmenter.feed(samples):
            self._queue.put(phrase)

    def feed_all(self, blocks: Iterable[Samples]) -> None:
        for block in blocks:
            self.feed(block)

    def finish(self) -> str:
        """End of audio: transcribe what is left and return the text to type."""
        if self._segmenter is None or self._worker is None:
            raise RuntimeError("call start() before finish()")
        started = time.monotonic()
        segmenter, self._segmenter = self._segmenter, None
        recorded_ms = segmenter.total_samples * 1000 // SAMPLE_RATE
        too_short = recorded_ms < self.audio_settings.min_recording_ms
        if too_short:
            self._cancelled.set()
        else:
            for phrase in segmenter.flush():
                self._queue.put(phrase)
        self._queue.put(_STOP)
        self._worker.join()
        self._worker = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        phrases = [] if too_short else sorted(self._results, key=lambda r: r.index)
        text = join_phrases(r.text for r in phrases)
        self.result = DictationResult(
            text=text,
            audio_s=segmenter.total_samples / SAMPLE_RATE,
            phrases=phrases,
            compute_s=sum(r.compute_s for r in phrases),
            finish_s=time.monotonic() - started,
            too_short=too_short,
        )
        if too_short:
            log.info("recording of %d ms is shorter than min_recording_ms: nothing typed", recorded_ms)
        return text

    def cancel(self) -> None:
        """Drop the dictation (e.g. the button was pressed again to abort); returns at once."""
        self._cancelled.set()
        self._segmenter = None
        self._queue.put(_STOP)
        self._worker = None

    def _work(self) -> None:
        while True:
            phrase = self._queue.get()
            if phrase is None:
                return
            if self._cancelled.is_set() or self._error is not None:
                continue
            try:
                transcript = self.engine.transcribe(phrase.samples)
            except VoxkeyError as exc:
                self._error = exc
                continue
            except Exception as exc:  # keep the worker alive; finish() re-raises it in the caller's thread
                self._error = exc
                continue
            result = PhraseResult(
                index=phrase.index,
                start_s=phrase.start_s,
                audio_s=phrase.duration_s,
                raw=transcript.text,
                text=clean_phrase(transcript.text, transcript.audio_s),
                compute_s=transcript.compute_s,
            )
            log.debug("phrase %d (%.1f s) in %.2f s: %r", result.index, result.audio_s, result.compute_s, result.raw)
            self._results.append(result)
            if self.on_phrase is not None:
                self.on_phrase(result)


def transcribe_samples(
    engine: WhisperEngine,
    samples: Samples,
    vad: VadSettings | None = None,
    audio: AudioSettings | None = None,
) -> DictationResult:
    """Run a whole recording through the same path as a live dictation, as fast as possible."""
    session = DictationSession(engine, vad, audio)
    session.start()
    session.feed(samples)
    session.finish()
    assert session.result is not None
    return session.result


def transcribe_file(
    engine: WhisperEngine,
    path: str | Path,
    vad: VadSettings | None = None,
    audio: AudioSettings | None = None,
) -> DictationResult:
    """A WAV file through the dictation path (what ``voxkey transcribe`` prints)."""
    source = WavFileSource(path, audio, realtime=False, auto_listen=True)
    return transcribe_samples(engine, source.samples, vad, audio)
