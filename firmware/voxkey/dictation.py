"""One dictation: audio in while the button is held, text out phrase by phrase.

The daemon drives it like this (any audio source from ``voxkey.audio``)::

    engine = WhisperEngine(AsrSettings(...))          # load once at start-up; reuse for every dictation
    session = DictationSession(engine, vad_settings, audio_settings, on_phrase=type_it)
    session.start()                                   # button pressed
    for block in source.frames():                     # capture thread; ends after release + post-roll
        session.feed(block)                           # cheap: VAD only, never waits for whisper
        if released and session.settled: break        # the speaker has stopped: no need for more post-roll
    text = session.finish()                           # usually ready: the last phrase was decoded speculatively
    # session.result has per-phrase details and timings

Why it is built this way (each figure from ``benchmarks/dictation.py``):

* **Phrase by phrase while the user talks.** The VAD closes a phrase at a
  pause and a worker transcribes it at once; ``on_phrase`` hands its text on
  (the daemon types it while the button is still held). At release only the
  phrase still open is left.
* **Speculation.** That last phrase is usually finished too: its audio is
  complete ``vad.tail_heard_ms`` after the last voiced frame (see
  :meth:`PhraseSegmenter.candidate`), so an idle worker transcribes it right
  then. If the speaker goes on, the guess is thrown away; if they stop (or
  release the button), the phrase closes with exactly that audio and the
  text is already there. Speculation only runs when no closed phrase waits.
* **Same audio, same text.** Phrases are cut by the audio alone, each phrase
  is decoded once (with the text before it as whisper's prompt if
  ``asr.context_words`` asks for it), and a speculative result is used only
  for the very same audio and prompt. So scheduling (a slow CPU, a busy
  worker) changes when text appears, never what it says.
* **Doubled phrases are caught.** A phrase whose words repeat the end of the
  text before it is what whisper produces when it copies its prompt; such a
  phrase is decoded again without the prompt, and kept only if it still says
  the same.
* **Phrases as long as the decode's price.** An engine that pays whisper's
  whole 30 s window for every decode (a multilingual model) gets phrases of
  up to 25-28 s, ended early only at a thinking pause (``phrase_rules``):
  as many decodes as plain whisper makes windows, text at those pauses.
* **Wrong guesses are rationed and stopped.** While the button is held a guess
  waits for part of a pause (``HELD_GUESS_PAUSE``) and wrong ones have a budget
  (``GUESS_BUDGET``). A guess still running when the speaker goes on is stopped
  at once (whisper.cpp's abort callback): its text can no longer be used, and
  the phrases after it would wait for it. A cancel stops any decode.

Nothing is typed for a recording shorter than ``AudioSettings.min_recording_ms``
(a tap on the button) or without speech (VAD finds no phrase, or whisper's
output is a known hallucination).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from voxkey.asr import PhraseTranscriber, Transcript
from voxkey.audio import SAMPLE_RATE, AudioSettings, Samples, WavFileSource
from voxkey.text.cleanup import clean_phrase, close_sentence, continues_after_full_stop, join_two
from voxkey.vad import Phrase, PhraseSegmenter, VadSettings

log = logging.getLogger(__name__)

SPECULATE_MIN_S = 2.0
"""Shorter open phrases are not decoded ahead: at release they take ~0.2 s (256 encoder positions), and each
wrong guess costs a whole decode."""
GUESS_ALLOWANCE_S = 0.6
GUESS_BUDGET = 0.02
"""While the button is held, wrong guesses may cost at most GUESS_ALLOWANCE_S + GUESS_BUDGET x audio seconds of
whisper time: unbounded, a guess at every pause took 9 decodes for 22 s of dictation (8 wasted) and twice the CPU
time of the whole recording decoded at once. After release a guess is almost never wrong, so it is always made.
Why 0.02 and not 0.04: in a 5-minute dictation 0.04 let 11 wrong guesses cost 10 s of whisper time, and the
dictation 1.24x the CPU of plain whole-recording decoding; short dictations live off the fixed allowance."""
HELD_GUESS_PAUSE = 0.6
"""While the button is held, a guess waits until the pause is this fraction of ``vad.phrase_pause_ms`` old: most
pauses of 180-360 ms are inside a sentence and the phrase goes on. On the benchmark's 12 dictations
(``benchmarks/guesses.py``) guessing at ``tail_ms`` made 79 guesses of which 14 were used; waiting for 0.6 of the
pause makes 32, the same 14 used. Once the button is up, the guess is made as soon as the phrase's audio is complete
(``tail_heard_ms``): the speaker has stopped (the price: a user who waits 90-360 ms before releasing gets the guess
up to 270 ms later)."""
WHOLE_WINDOW_PAUSE_MS = 3000
WHOLE_WINDOW_PHRASE_S = 25.0
WHOLE_WINDOW_MAX_S = 28.0
"""Phrase rules for an engine that pays whisper's whole 30 s window for every decode (a multilingual model):
a phrase ends at a pause of WHOLE_WINDOW_PAUSE_MS (a thought finished), or at a short pause once it holds
WHOLE_WINDOW_PHRASE_S, and is split at WHOLE_WINDOW_MAX_S. With the usual sentence-sized phrases base-q5_1
decoded each 3-8 s sentence in the time plain whisper takes for the whole recording: 2.9x plain's CPU and,
at 8 s, 1.7x plain's wait (``benchmarks/dictation.py --models base-q5_1``). Window-sized phrases make about
as many decodes as plain makes windows; the text comes at thinking pauses instead of after every sentence."""
PROMPTED_MIN_WORDS_PER_S = 1.0
"""A phrase decoded with the prompt and fewer words than this per second of voiced sound is decoded again without
it (``DictationSession._prompt_fault``). Every phrase of ../shared/speech has 1.9 words a second or more."""
_WORDS = re.compile(r"[\w']+")
_MIN_COPY_WORDS = 4


@dataclass(frozen=True)
class PhraseResult:
    """One phrase as transcribed, and what it adds to the dictation's text."""

    index: int
    start_s: float
    audio_s: float
    raw: str  # whisper's words
    text: str  # after clean-up ("" when it was a hallucination)
    compute_s: float
    addition: str = ""  # what the dictation's text grows by: ``text`` with the joining space and case
    speculative: bool = False  # decoded before the phrase closed (ready when it did)


@dataclass
class DictationResult:
    text: str
    audio_s: float  # recording length
    phrases: list[PhraseResult] = field(default_factory=list)
    compute_s: float = 0.0  # whisper time, all decodes including speculative ones thrown away
    finish_s: float = 0.0  # time spent inside finish(): the wait the user feels after the audio ends
    too_short: bool = False
    speculations: int = 0  # speculative decodes run
    speculation_hits: int = 0  # ... whose text was used
    speculations_stopped: int = 0  # ... stopped part-way because the speaker went on


@dataclass
class _Decoded:
    transcript: Transcript
    prompt: str


class DictationSession:
    """Streaming transcription of one recording; see the module docstring for the calling pattern.

    ``feed`` must be called from one thread; ``finish``/``cancel`` from any.
    ``on_phrase`` is called from the worker thread, in phrase order, as each
    phrase is done; it must be quick (hand the text to another thread).
    """

    def __init__(
        self,
        engine: PhraseTranscriber,
        vad: VadSettings | None = None,
        audio: AudioSettings | None = None,
        on_phrase: Callable[[PhraseResult], None] | None = None,
        speculate: bool = True,
    ) -> None:
        self.engine = engine
        self.vad_settings = phrase_rules(engine, vad or VadSettings())
        self.audio_settings = audio or AudioSettings()
        self.on_phrase = on_phrase
        self.speculate = speculate
        self.result: DictationResult | None = None
        self._segmenter: PhraseSegmenter | None = None
        self._worker: threading.Thread | None = None
        self._cond = threading.Condition()
        # shared with the worker, under _cond:
        self._closed: deque[Phrase] = deque()
        self._candidate: Phrase | None = None
        self._candidate_silence_ms = 0
        self._ending = False
        self._cancelled = False
        self._speculated: dict[tuple[float, int], _Decoded] = {}
        self._guessing: tuple[float, int] | None = None  # the key of the guess being decoded
        self._stop_guess = threading.Event()  # set: the guess being decoded can no longer be used
        self._stop_all = threading.Event()  # set: the dictation was cancelled; no decode is needed
        self._guesses_stopped = 0
        # owned by the worker until it ends:
        self._text = ""
        self._results: list[PhraseResult] = []
        self._compute_s = 0.0
        self._speculations = 0
        self._hits = 0
        self._guess_s = 0.0  # whisper time spent on guesses that were not used
        self._released = False
        self._fed_s = 0.0
        self._error: BaseException | None = None
        self._held = (
            ""  # the full stop of a phrase that ended at a short pause: typed once the next shows a new sentence
        )

    @property
    def active(self) -> bool:
        return self._segmenter is not None

    @property
    def settled(self) -> bool:
        """The speaker is not in the middle of a phrase: more audio after release would add nothing."""
        return self._segmenter is None or self._segmenter.settled

    def start(self) -> None:
        if self.active:
            raise RuntimeError("dictation session already started")
        self._segmenter = PhraseSegmenter(self.vad_settings)
        self._closed, self._candidate, self._speculated = deque(), None, {}
        self._guessing, self._guesses_stopped = None, 0
        self._stop_guess.clear()
        self._stop_all.clear()
        self._ending = self._cancelled = False
        self._text, self._results, self._compute_s = "", [], 0.0
        self._speculations = self._hits = 0
        self._guess_s, self._released, self._fed_s = 0.0, False, 0.0
        self._error, self._held = None, ""
        self.result = None
        self._worker = threading.Thread(target=self._work, name="voxkey-asr-worker", daemon=True)
        self._worker.start()

    def feed(self, samples: Samples) -> None:
        """Add captured audio; closed phrases go to the worker straight away."""
        if self._segmenter is None:
            raise RuntimeError("call start() before feed()")
        closed = self._segmenter.feed(samples)
        candidate = self._segmenter.candidate() if self.speculate else None
        if candidate is not None and candidate.duration_s < SPECULATE_MIN_S:
            candidate = None
        with self._cond:
            self._fed_s += samples.size / SAMPLE_RATE
            self._closed.extend(closed)
            self._candidate = candidate
            self._candidate_silence_ms = self._segmenter.silence_ms
            if self._guessing is not None and self._segmenter.outgrown(self._guessing):
                self._stop_guess.set()
            self._cond.notify_all()

    def release(self) -> None:
        """The button came up: the end is near, so guessing at the last phrase is no longer a gamble."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def feed_all(self, blocks: Iterable[Samples]) -> None:
        for block in blocks:
            self.feed(block)

    def finish(self) -> str:
        """End of audio: transcribe what is left and return the whole text."""
        if self._segmenter is None or self._worker is None:
            raise RuntimeError("call start() before finish()")
        started = time.monotonic()
        segmenter, self._segmenter = self._segmenter, None
        recorded_ms = segmenter.total_samples * 1000 // SAMPLE_RATE
        too_short = recorded_ms < self.audio_settings.min_recording_ms
        rest = [] if too_short else segmenter.flush()
        with self._cond:
            self._cancelled = too_short
            self._closed.extend(rest)
            self._candidate = None
            self._ending = True
            self._cond.notify_all()
        self._worker.join()
        self._worker = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        phrases = [] if too_short else list(self._results)
        text = "" if too_short else self._text
        self.result = DictationResult(
            text=text,
            audio_s=segmenter.total_samples / SAMPLE_RATE,
            phrases=phrases,
            compute_s=self._compute_s,
            finish_s=time.monotonic() - started,
            too_short=too_short,
            speculations=self._speculations,
            speculation_hits=self._hits,
            speculations_stopped=self._guesses_stopped,
        )
        if too_short:
            log.info("recording of %d ms is shorter than min_recording_ms: nothing typed", recorded_ms)
        return text

    def cancel(self) -> None:
        """Drop the dictation (e.g. the button was pressed again to abort); returns at once."""
        self._segmenter = None
        with self._cond:
            self._cancelled = True
            self._ending = True
            self._stop_guess.set()
            self._stop_all.set()
            self._cond.notify_all()
        self._worker = None

    # --- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not (self._closed or self._ending or self._wanted_guess() is not None):
                    self._cond.wait()
                if self._cancelled:
                    return
                if self._ending and not self._closed:
                    break
                if self._closed:
                    phrase, guess = self._closed.popleft(), False
                else:
                    phrase, guess = self._wanted_guess(), True  # type: ignore[assignment]
                ready = None
                if not guess:
                    ready = self._speculated.pop(phrase.key, None)
                    self._forget_guesses_before(phrase)
            try:
                if guess:
                    self._guess(phrase)
                else:
                    self._commit(phrase, ready)
            except Exception as exc:  # keep the worker alive; finish() re-raises it in the caller's thread
                self._error = exc
                with self._cond:
                    self._closed.clear()
                    self._cancelled = True
                return
        self._end_held_sentence()

    def _wanted_guess(self) -> Phrase | None:
        candidate = self._candidate
        if candidate is None or candidate.key in self._speculated or self._ending:
            return None
        if self._released:
            return candidate
        if self._candidate_silence_ms < HELD_GUESS_PAUSE * self.vad_settings.phrase_pause_ms:
            return None
        if self._guess_s > GUESS_ALLOWANCE_S + GUESS_BUDGET * self._fed_s:
            return None
        return candidate

    def _forget_guesses_before(self, phrase: Phrase) -> None:
        """Guesses for audio that ends inside a closed phrase can no longer be used (caller holds _cond)."""
        self._speculated = {key: d for key, d in self._speculated.items() if key[0] >= phrase.start_s}

    def _continues_sentence(self, phrase: Phrase) -> bool:
        """The phrase before ended at a short pause with a full stop, and this one follows after a short pause."""
        pause = phrase.pause_before_ms
        return bool(self._held) and pause is not None and pause < self.vad_settings.phrase_pause_ms

    def _prompt(self) -> str:
        words = self.engine.settings.context_words
        return " ".join(self._text.split()[-words:]) if words else ""

    def _decode(self, phrase: Phrase, prompt: str, guess: bool = False) -> Transcript:
        stop = self._stop_guess.is_set if guess else self._stop_all.is_set
        transcript = self.engine.transcribe(phrase.samples, prompt=prompt, stop=stop)
        self._compute_s += transcript.compute_s
        return transcript

    def _guess(self, phrase: Phrase) -> None:
        prompt = self._prompt()
        with self._cond:
            if self._cancelled:
                return
            self._guessing = phrase.key
            self._stop_guess.clear()
        try:
            transcript = self._decode(phrase, prompt, guess=True)
        finally:
            with self._cond:
                self._guessing = None
        self._speculations += 1
        with self._cond:
            self._guess_s += transcript.compute_s  # paid back in _commit if the guess is used
            if transcript.stopped:
                self._guesses_stopped += 1
                log.debug("phrase %d: guess stopped after %.2f s (speech went on)", phrase.index, transcript.compute_s)
                return
            self._speculated[phrase.key] = _Decoded(transcript, prompt)
        log.debug("phrase %d decoded ahead (%.1f s) in %.2f s", phrase.index, phrase.duration_s, transcript.compute_s)

    def _commit(self, phrase: Phrase, ready: _Decoded | None) -> None:
        prompt = self._prompt()
        speculative = ready is not None and ready.prompt == prompt
        if ready is not None and speculative:
            transcript = ready.transcript
            self._hits += 1
            with self._cond:
                self._guess_s -= transcript.compute_s
        else:
            transcript = self._decode(phrase, prompt)
        if transcript.stopped:  # cancelled: nothing of this dictation is typed
            return
        text = self._clean(phrase, transcript)
        fault = self._prompt_fault(phrase, text) if prompt else ""
        if fault:
            retry = self._decode(phrase, "")
            if retry.stopped:
                return
            log.info("phrase %d %s; decoded again without the prompt", phrase.index, fault)
            log.debug("phrase %d: %r with the prompt, %r without", phrase.index, text, retry.text)
            transcript, speculative, prompt = retry, False, ""
            text = self._clean(phrase, retry)
        if prompt:
            text = close_sentence(text)
        held = self._settle_held(phrase, text)
        joined = join_two(self._text, text)
        addition = held + joined[len(self._text) :]
        self._text = joined
        if phrase.cut_short and joined.endswith(".") and not joined.endswith(".."):
            self._held, self._text, addition = ".", joined[:-1], addition[:-1]
        result = PhraseResult(
            index=phrase.index,
            start_s=phrase.start_s,
            audio_s=phrase.duration_s,
            raw=transcript.text,
            text=text,
            compute_s=transcript.compute_s,
            addition=addition,
            speculative=speculative,
        )
        log.debug("phrase %d (%.1f s) in %.2f s: %r", result.index, result.audio_s, result.compute_s, result.raw)
        self._results.append(result)
        if self.on_phrase is not None:
            self.on_phrase(result)

    def _prompt_fault(self, phrase: Phrase, text: str) -> str:
        """What is wrong with a phrase decoded with the prompt, if it shows the prompt misled whisper.

        Two faults seen: the phrase copies the end of the text before it (a doubled phrase), and the phrase
        lost most of its words (once while this was built: the last phrase of JFK's address, resampled, came
        back 7 words short). Speech is 2-3 words a second; under ``PROMPTED_MIN_WORDS_PER_S`` words per
        second of voiced sound the prompt is blamed. A sound phrase never pays the retry.
        """
        if repeats_end_of(text, self._text):
            return "repeated the text before it"
        voiced_s = phrase.speech_ms / 1000
        words = len(_WORDS.findall(text))
        if voiced_s >= 1.0 and words < PROMPTED_MIN_WORDS_PER_S * voiced_s:
            return f"had {words} words for {voiced_s:.1f} s of speech"
        return ""

    def _clean(self, phrase: Phrase, transcript: Transcript) -> str:
        """Clean-up judges a phrase's words against its sound; a window-sized phrase's pauses are not sound.

        A phrase of whole-window rules may hold pauses of up to 3 s: "one ... two ... three" over 9 s is three
        words in 1.5 s of speech, not a sparse phrase of noise (``clean_phrase``'s rule).
        """
        sound_s = phrase.speech_ms / 1000 if self.engine.decodes_whole_window else transcript.audio_s
        return clean_phrase(transcript.text, sound_s)

    def _settle_held(self, phrase: Phrase, text: str) -> str:
        """Decide a held full stop with the next phrase's text; returns it if it goes into the text now.

        A phrase cut at a short pause is often mid-sentence ("may justly be considered | as the invention"),
        but whisper ends every phrase with a full stop and starts the next with a capital. So the stop is
        held back, and dropped if the next phrase follows after a short pause and starts like the rest of a
        sentence (``continues_after_full_stop``: lower case, or a word such as "as" or "which"); join_two
        then lowers its capital. Giving whisper the text before as its prompt instead was tried: it went on
        with "printing differs ..." in lower case after a full sentence, and cost a prompt per phrase.
        """
        continues = self._continues_sentence(phrase)
        if not self._held or (not text and continues):
            return ""
        held, self._held = self._held, ""
        if continues and continues_after_full_stop(text):
            return ""
        self._text += held
        return held

    def _end_held_sentence(self) -> None:
        """The dictation is over: a full stop still held back ends it."""
        if not self._held:
            return
        held, self._held = self._held, ""
        self._text += held
        if self.on_phrase is not None and self._results:
            last = self._results[-1]
            end_s = last.start_s + last.audio_s
            self.on_phrase(PhraseResult(last.index, end_s, 0.0, "", "", 0.0, addition=held))


def phrase_rules(engine: PhraseTranscriber, vad: VadSettings) -> VadSettings:
    """The VAD's phrase rules for this engine: the user's, or window-sized ones (``WHOLE_WINDOW_PHRASE_S``)."""
    if not engine.decodes_whole_window:
        return vad
    return replace(
        vad,
        phrase_pause_ms=max(vad.phrase_pause_ms, WHOLE_WINDOW_PAUSE_MS),
        long_phrase_s=max(vad.long_phrase_s, WHOLE_WINDOW_PHRASE_S),
        max_phrase_s=max(vad.max_phrase_s, WHOLE_WINDOW_MAX_S),
    )


def repeats_end_of(text: str, before: str) -> bool:
    """Whether ``text`` says again, word for word, what ``before`` ends with (a copied prompt)."""
    words = _WORDS.findall(text.lower())
    if len(words) < _MIN_COPY_WORDS:
        return False
    previous = _WORDS.findall(before.lower())
    return previous[-len(words) :] == words


def transcribe_samples(
    engine: PhraseTranscriber,
    samples: Samples,
    vad: VadSettings | None = None,
    audio: AudioSettings | None = None,
) -> DictationResult:
    """Run a whole recording through the same path as a live dictation, as fast as possible."""
    session = DictationSession(engine, vad, audio, speculate=False)
    session.start()
    session.feed(samples)
    session.finish()
    assert session.result is not None
    return session.result


def transcribe_file(
    engine: PhraseTranscriber,
    path: str | Path,
    vad: VadSettings | None = None,
    audio: AudioSettings | None = None,
) -> DictationResult:
    """A WAV file through the dictation path (what ``voxkey transcribe`` prints)."""
    source = WavFileSource(path, audio, realtime=False, auto_listen=True)
    return transcribe_samples(engine, source.samples, vad, audio)
