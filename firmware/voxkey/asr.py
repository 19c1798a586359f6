"""Speech to text with whisper.cpp (through pywhispercpp), tuned for short dictated phrases.

Why these decoding choices (each measured on ../shared/speech, see benchmarks/asr.py):

* ``no_timestamps`` + ``single_segment``: dictation needs words, not subtitles;
  skipping timestamp tokens makes decoding shorter and the whole phrase comes
  back as one segment, so one token cap covers all of it.
* a token cap that scales with the phrase length: quantized tiny models can
  fall into a repetition loop and would otherwise decode up to 224 tokens of
  "the the the"; nobody says more than ~5 tokens a second.
* ``audio_ctx`` sized to the phrase (``audio_ctx="auto"``): whisper's encoder
  always works on 30 s windows; telling it the phrase is shorter cuts the
  encoder's work roughly in proportion. Measured on the test set it costs no
  accuracy (3.23 % WER, vs 3.43 % for plain whole-file decoding). One-word
  phrases (under ``short_phrase_s``) are the exception: with a tiny window
  tiny models loop ("Yes. Yes. Yes."), so they get ``short_audio_ctx``
  positions (256, 5.12 s): on 30 short spoken commands (espeak-ng, two voices)
  that gave 20 % WER against 25 % with whisper's full window, in 0.39 s a
  phrase instead of 1.04 s (this matters: the last words of a dictation are
  often such a phrase, decoded after release). A fixed floor of 384 positions
  for all phrases cost accuracy instead (3.64 %). Multilingual models (no ``.en``)
  get the full window always: sized windows took base-q5_1 from 3.64 % to
  12.9 % WER on the same files (so a dictation gives them window-sized
  phrases, ``decodes_whole_window``). A sized window can still send tiny into a
  loop on a longer phrase (seen: a 5 s sentence came back twice plus words of
  the previous phrase, 11.5 s of decoding): when the text repeats itself or
  holds more words than anyone says in that time, the repeat is cut off
  (:func:`trim_loop`, :func:`cut_at_repeat`: in every loop seen on continuous
  dictation the first copy was the right text); only output that still looks wrong is decoded again
  with a wider window (``LOOP_RETRY_AUDIO_CTX``; 0.7 s for an 8 s phrase here, so it must be rare).
* no temperature fallback by default: whisper's own guard re-decodes a doubtful
  phrase at rising temperatures with five candidates each, which cost up to
  4.5 s for a 2.7 s phrase and gave the same words (continuous dictation:
  2.58 % WER with and without it, CPU per audio second 0.34 with, 0.15
  without); without sampling, the same audio also always gives the same text.
* the dictation's last 8 words as the prompt (``context_words``): on the benchmark's
  12 dictations (seeds 1-3) 2.25 % WER against 2.57 % without, for 6 % more whisper
  time (32 words: 2.35 %, 10 % more). An earlier measurement found 38 % more CPU
  and no gain: a prompt makes tiny loop more often (8 loops on those dictations
  against 2), and each loop was decoded again; :func:`cut_at_repeat` now keeps
  the first copy instead. Whisper leaves a prompted
  phrase open at its end, so a phrase gets the full stop it would have had without
  a prompt (``text.cleanup.close_sentence``), and a phrase the prompt misled is
  decoded again without it (``DictationSession._prompt_fault``). A user with their
  own vocabulary sets ``initial_prompt``; it goes before these words.
* phrases shorter than one second are padded with silence: whisper.cpp
  refuses input under 1 s outright.

whisper.cpp's own log lines go to the ``voxkey.whisper`` logger at DEBUG
level instead of cluttering stderr.
"""

from __future__ import annotations

import atexit
import logging
import math
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from voxkey.audio import SAMPLE_RATE, Samples
from voxkey.errors import ModelError
from voxkey.models import check_model, find_model
from voxkey.speech_settings import FULL_AUDIO_CTX as _FULL_AUDIO_CTX
from voxkey.speech_settings import AsrSettings as AsrSettings  # defined apart, light to import; re-exported

log = logging.getLogger(__name__)
whisper_log = logging.getLogger("voxkey.whisper")

MIN_WHISPER_SAMPLES = int(1.1 * SAMPLE_RATE)  # whisper.cpp ignores input under 1000 ms
_ENCODER_POSITIONS_PER_S = 50  # 1500 positions for whisper's 30 s window
_CTX_BLOCK = 256
MAX_WORDS_PER_S = 4.5  # brisk dictation is ~3 words/s; more from whisper means a loop or invented words
MIN_LOOP_WORDS = 3  # a run of this many words said twice back to back is whisper looping, not a speaker
LOOP_RETRY_AUDIO_CTX = 1024
"""A loop :func:`trim_loop` cannot cut is decoded again with this window (20.5 s), not whisper's full 1500.

Why not the full window: it is the one decode that makes whisper.cpp touch all of its encoder buffers, and
those pages stay resident: peak RSS by the largest window used (tiny.en-q5_1, engine alone) is 120 MB at 256
positions, 139 MB at 1024, 151 MB at 1500, and 1024 is what a 15 s phrase (``vad.max_phrase_s``) gets anyway.
So one loop in a 5-minute dictation raised the daemon's peak by 14 MB. On the benchmark's loops that the cut
could not fix (2 in 480 s of dictation) the 1024 window gave clean text in 0.71 s against 1.21 s for the full
window, one word different ("as what" for "ask what"). A 1024 window that still loops gets the full window."""
_WORDS = re.compile(r"[\w']+")


@dataclass
class Transcript:
    """Raw whisper output for one stretch of audio (before text clean-up)."""

    text: str
    audio_s: float
    compute_s: float
    segments: list[str] = field(default_factory=list)
    stopped: bool = False  # the caller's ``stop`` asked to end the decode early: ``text`` is empty


class PhraseTranscriber(Protocol):
    """What a dictation needs from speech recognition: :class:`WhisperEngine`, or
    ``voxkey.remote.engine.RemoteEngine`` (a LAN speech server with this engine as fallback)."""

    @property
    def settings(self) -> AsrSettings: ...

    @property
    def name(self) -> str: ...

    @property
    def decodes_whole_window(self) -> bool:
        """Every decode costs a 30 s window, however short the audio (see ``WhisperEngine``)."""
        ...

    def transcribe(
        self,
        samples: Samples | npt.NDArray[np.float32],
        prompt: str | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        """``stop`` is polled during the decode; once it says True the decode may end early (``stopped``)."""
        ...

    def warm_up(self) -> None: ...

    def close(self) -> None: ...


# --- whisper.cpp log routing ---------------------------------------------------------------------

_engines: weakref.WeakSet[WhisperEngine] = weakref.WeakSet()
_log_bridge_installed = False
_log_lock = threading.Lock()


def _forward_whisper_log(level: int, text: str) -> None:
    message = text.rstrip()
    if message:
        whisper_log.debug("%s", message)


def _install_log_bridge() -> None:
    global _log_bridge_installed
    with _log_lock:
        if _log_bridge_installed:
            return
        import _pywhispercpp as pw  # type: ignore[import-not-found]

        pw.whisper_log_set(_forward_whisper_log)
        atexit.register(_shutdown)
        _log_bridge_installed = True


def _shutdown() -> None:
    """Free models while Python can still run the log callback, then restore whisper's own logger.

    Without this, a model freed during interpreter teardown calls back into a
    Python that is already gone and the process aborts.
    """
    for engine in list(_engines):
        engine.close()
    import _pywhispercpp as pw

    pw.whisper_log_set(None)


# --- the one thread whisper.cpp computes on ------------------------------------------------------

_Result = TypeVar("_Result")


class _WhisperThread:
    """The one thread that runs whisper.cpp's decodes, for the life of the process, whoever asks for them.

    Why: whisper.cpp computes with OpenMP (libgomp), and libgomp keeps a pool of worker threads for every
    thread that has started a parallel region, for as long as that thread lives. Once there are more pool
    threads than cores, libgomp makes each of them spin only briefly before sleeping, so between the many
    small steps of the text decoder they sleep and are woken again. Measured here (2 cores, tiny.en-q5_1,
    2 threads, one 9.8 s recording decoded 3 times): from the thread that warmed the model up, 1.2 ms a
    token, 0.58 s, 1.13 CPU s; the same from a second thread while the first lives, 4.5 ms a token, 0.90 s,
    1.35 CPU s. The daemon warms up on its main thread and each dictation decodes on a worker, so every
    dictation paid that: over the benchmark's 12 dictations the decoder took as long as the encoder. The
    encoder (one big step) barely cares. Loading starts no parallel region and stays on the caller's thread;
    freeing comes here too, queued behind any decode still running (a caller interrupted while it waited).
    Not a one-worker ``ThreadPoolExecutor``: that refuses work once the interpreter starts shutting down,
    before the atexit hook that frees the models (``_shutdown``) runs.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def run(self, job: Callable[[], _Result]) -> _Result:
        """``job()`` on the whisper thread; its result or exception comes back to the caller."""
        if threading.current_thread() is self._thread:
            return job()
        self._start()
        done: Future[_Result] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="voxkey-whisper", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller, which raises it in its own thread
                done.set_exception(exc)


_whisper_thread = _WhisperThread()


# --- the engine -----------------------------------------------------------------------------------


def audio_ctx_for(samples: int, margin_s: float) -> int:
    """Encoder positions covering ``samples`` plus a margin, rounded up to a multiple of 256.

    Why 256: with any other size, whisper.cpp's text depended on the window
    sizes of the calls before (one 6.6 s phrase gave four different texts
    after four different histories; at 512, 768, 1280 or the full window it
    gave one). Positions past the window are apparently read from a buffer
    padded to 256; only whole blocks leave nothing stale in it. Without this,
    the same audio gave different text from run to run.
    """
    seconds = samples / SAMPLE_RATE + margin_s
    positions = int(math.ceil(seconds * _ENCODER_POSITIONS_PER_S / _CTX_BLOCK) * _CTX_BLOCK)
    return min(_FULL_AUDIO_CTX, positions)


def looks_looped(text: str, audio_s: float) -> bool:
    """Whether a transcript shows whisper's loop symptoms: a repeated run of words, or too many words."""
    words = _WORDS.findall(text.lower())
    if len(words) > MAX_WORDS_PER_S * max(audio_s, 1.0) + 2:
        return True
    for size in range(MIN_LOOP_WORDS, len(words) // 2 + 1):
        for start in range(len(words) - 2 * size + 1):
            if words[start : start + size] == words[start + size : start + 2 * size]:
                return True
    return False


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SENTENCE_MARK = re.compile(r"[.!?][\"')]*$")
MIN_REPEAT_WORDS = 4  # a run this long said twice inside one looped phrase is the loop starting again
_MAX_REPEAT_LEAD = 2


def trim_loop(text: str) -> str:
    """Whisper's loop cut off: a sentence said again right after itself, and a trailing piece of a repeat.

    A sized window sends tiny into "X. X. X." (until the token cap cuts the
    last copy short); the first copy is the speech.
    """
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        words = _WORDS.findall(sentence.lower())
        previous = _WORDS.findall(kept[-1].lower()) if kept else []
        repeated = words == previous or (len(words) < len(previous) and previous[: len(words)] == words)
        if words and previous and repeated:
            continue
        kept.append(sentence)
    return " ".join(kept)


def cut_at_repeat(text: str) -> str:
    """A loop that is not whole sentences, cut where the first run of ``MIN_REPEAT_WORDS`` words comes again.

    Tiny's loops on continuous dictation also take these shapes (each seen, with the prompt on and off):
    "... used imitates a much freer hand imitates a much freer hand ...", "... he is with us. In the valley
    of the shadow of death he is with us. In the valley ..." (the copy starts with a changed word), "... easier
    to read. And therefore far pleasanter and easier to read. And therefore ...". In all of them the text up
    to the repeat was the speech: the 1024-position retry gave the same words, for 0.3-0.5 s of decoding here
    each. A piece of at most ``_MAX_REPEAT_LEAD`` words after the last full stop is the changed start of the
    copy, and goes too. Returns ``text`` unchanged when no run comes twice.
    """
    tokens = text.split()
    keys = [_token_key(token) for token in tokens]
    seen: set[tuple[str, ...]] = set()
    for start in range(len(keys) - MIN_REPEAT_WORDS + 1):
        run = tuple(keys[start : start + MIN_REPEAT_WORDS])
        if run in seen:
            return _drop_repeat_lead(tokens[:start])
        seen.add(run)
    return text


def _token_key(token: str) -> str:
    return "".join(_WORDS.findall(token.lower()))


def _drop_repeat_lead(tokens: list[str]) -> str:
    ends = [i for i, token in enumerate(tokens) if _SENTENCE_MARK.search(token)]
    if ends and 0 < len(tokens) - 1 - ends[-1] <= _MAX_REPEAT_LEAD:
        tokens = tokens[: ends[-1] + 1]
    return " ".join(tokens).rstrip(",;:- ")


class _Stopped(Exception):
    """The caller's ``stop`` ended a decode (internal: ``transcribe`` returns a ``stopped`` transcript)."""


def _load_context(pw: Any, path: Path) -> Any:
    """whisper.cpp's context for ``path``, through pywhispercpp's binding rather than its ``Model`` class.

    Why the binding: ``pywhispercpp.model`` imports ``requests`` (for its own model downloads, which
    voxkey does not use) and with it urllib3 and ssl: 15 MB of resident memory and ~0.3 s of start-up
    here (3-4x that on a Pi) for nothing. The binding is what ``Model`` calls; the decoding parameters
    below are the ones ``Model`` would set, so the text is the same (``tests/test_asr.py`` compares).
    """
    try:
        context = pw.whisper_init_from_file_with_params(str(path), pw.whisper_context_default_params())
    except Exception as exc:  # the binding raises bare exceptions for unreadable files
        raise ModelError(f"whisper could not load {path}: {exc}; download the model again") from exc
    if context is None:
        raise ModelError(f"whisper could not load {path}; download the model again")
    return context


class WhisperEngine:
    """One loaded whisper model. Thread-safe: calls are serialised (one whisper context), and every decode
    runs on the one whisper thread (:class:`_WhisperThread`), whichever thread calls."""

    def __init__(self, settings: AsrSettings | None = None) -> None:
        self.settings = settings or AsrSettings()
        self.model_path: Path = find_model(self.settings.model)
        check_model(self.model_path)
        _install_log_bridge()
        import _pywhispercpp as pw

        started = time.monotonic()
        self._ctx: Any = _load_context(pw, self.model_path)
        self._params: Any = pw.whisper_full_default_params(pw.whisper_sampling_strategy.WHISPER_SAMPLING_GREEDY)
        for name, value in {
            "n_threads": self.settings.threads,
            "language": self.settings.language,
            "print_progress": False,
            "print_realtime": False,
            "print_timestamps": False,
            "no_timestamps": True,
            "single_segment": True,
            "no_context": True,
            "suppress_blank": True,
            "suppress_nst": True,
            "temperature_inc": 0.2 if self.settings.temperature_fallback else 0.0,
        }.items():
            setattr(self._params, name, value)
        self.load_s = time.monotonic() - started
        self._lock = threading.Lock()
        self._closed = False
        _engines.add(self)
        log.info("loaded %s in %.2f s (%d threads)", self.model_path.name, self.load_s, self.settings.threads)

    @property
    def name(self) -> str:
        return self.model_path.name

    @property
    def english_only(self) -> bool:
        """whisper.cpp names English-only models ``*.en*``; only those keep their accuracy with sized windows."""
        return ".en" in self.model_path.name

    @property
    def decodes_whole_window(self) -> bool:
        """Whether every decode costs whisper's whole 30 s window, however short the audio.

        True for multilingual models (sized windows cost them their accuracy, see ``_decode_params``) and for
        ``audio_ctx`` set to the full window. A dictation then cuts fewer, longer phrases (``voxkey.dictation``).
        """
        ctx = self.settings.audio_ctx
        if ctx == "auto":
            return not self.english_only
        return int(ctx) in (0, _FULL_AUDIO_CTX)

    def _decode_params(self, n_samples: int, prompt: str, min_audio_ctx: int = 0) -> dict[str, Any]:
        seconds = n_samples / SAMPLE_RATE
        params: dict[str, Any] = {
            "max_tokens": int(self.settings.token_cap_base + self.settings.tokens_per_second * seconds),
            "initial_prompt": prompt,
        }
        if self.settings.audio_ctx == "auto":
            short = n_samples < self.settings.short_phrase_s * SAMPLE_RATE
            if not self.english_only:
                params["audio_ctx"] = 0
            elif short:
                params["audio_ctx"] = self.settings.short_audio_ctx
            else:
                params["audio_ctx"] = audio_ctx_for(n_samples, self.settings.audio_ctx_margin_s)
        else:
            params["audio_ctx"] = int(self.settings.audio_ctx)
        if params["audio_ctx"]:  # 0 is whisper's full window, the widest
            params["audio_ctx"] = max(params["audio_ctx"], min_audio_ctx)
        return params

    def transcribe(
        self,
        samples: Samples | npt.NDArray[np.float32],
        prompt: str | None = None,
        *,
        stop: Callable[[], bool] | None = None,
        repair_loops: bool = True,
        min_audio_ctx: int = 0,
    ) -> Transcript:
        """Transcribe one phrase (or a whole recording of at most ~30 s for best results).

        ``stop`` is whisper.cpp's abort callback: polled between the steps of the
        decode (every few milliseconds), it ends a decode nobody needs any more (a
        guess at a phrase the speaker went on with) instead of letting it run its
        0.2-2 s here, 3-4x that on a Pi, while the phrases after it wait.

        ``repair_loops=False`` returns a looped decode as it came (the spoken pairing code):
        its wrong digit count asks the user again at once. Decoded again, it would take up to
        7x as long while BlueZ waits only 30 s for the code; cut, it could be a wrong code (CI
        heard "zero two zero five nine eight" as "0 2 0 5 8 0 0 5 8 0 ...", cut "0 2 0 5 8 0").

        ``min_audio_ctx`` widens a sized window to at least that many encoder positions (a multiple of
        256, see :func:`audio_ctx_for`): the spoken pairing code's (``voxkey.passkey.CODE_AUDIO_CTX``).
        """
        audio = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32)
        audio_s = audio.size / SAMPLE_RATE
        if audio.size == 0:
            return Transcript("", 0.0, 0.0)
        if audio.size < MIN_WHISPER_SAMPLES:
            audio = np.concatenate([audio, np.zeros(MIN_WHISPER_SAMPLES - audio.size, np.float32)])
        full_prompt = " ".join(p for p in (self.settings.initial_prompt, prompt or "") if p).strip()
        params = self._decode_params(audio.size, full_prompt, min_audio_ctx)
        with self._lock:
            if self._closed:
                raise ModelError("the whisper engine was closed; create a new one")
            return _whisper_thread.run(lambda: self._transcribe_here(audio, params, audio_s, stop, repair_loops))

    def _transcribe_here(
        self,
        audio: npt.NDArray[np.float32],
        params: dict[str, Any],
        audio_s: float,
        stop: Callable[[], bool] | None,
        repair_loops: bool,
    ) -> Transcript:
        """The decode and its loop repair, on the whisper thread (the caller holds ``_lock``)."""
        started = time.monotonic()
        try:
            texts = self._decode(audio, params, stop)
            sized = bool(params["audio_ctx"]) and self.settings.audio_ctx == "auto"
            if sized and looks_looped(" ".join(texts), audio_s):
                if repair_loops:
                    texts = self._repaired(audio, params, texts, audio_s, stop)
                else:  # the words stay out of the log: they may be a pairing code
                    log.debug("sized window looped on a %.1f s phrase; returned as it came", audio_s)
            elif sized and repair_loops and self._tokens_decoded() >= params["max_tokens"]:
                texts = self._cut_at_cap(texts, audio_s)
        except _Stopped:
            return Transcript("", audio_s, time.monotonic() - started, stopped=True)
        return Transcript(" ".join(texts), audio_s, time.monotonic() - started, texts)

    def _repaired(
        self,
        audio: npt.NDArray[np.float32],
        params: dict[str, Any],
        texts: list[str],
        audio_s: float,
        stop: Callable[[], bool] | None,
    ) -> list[str]:
        """Cut a loop, or decode again with the full window; the words go to DEBUG only (they may be a secret)."""
        looped = " ".join(texts)
        # trim_loop alone can keep a near-copy ("A. A. Paris, A." gives "A. Paris, A."), so its result is cut too
        for trimmed in (cut_at_repeat(trim_loop(looped)), cut_at_repeat(looped)):
            if trimmed and not looks_looped(trimmed, audio_s):
                log.info("sized window looped on a %.1f s phrase; kept the first copy", audio_s)
                log.debug("looped: %r, kept: %r", texts, trimmed)
                return [trimmed]
        log.debug("looped: %r", texts)
        wider = LOOP_RETRY_AUDIO_CTX if params["audio_ctx"] < LOOP_RETRY_AUDIO_CTX else 0
        log.info("sized window looped on a %.1f s phrase; decoding it again with %d positions", audio_s, wider or 1500)
        texts = self._decode(audio, {**params, "audio_ctx": wider}, stop)
        if wider and looks_looped(" ".join(texts), audio_s):
            log.info("the %d-position window looped too; decoding the phrase with the full window", wider)
            texts = self._decode(audio, {**params, "audio_ctx": 0}, stop)
        return texts

    def _cut_at_cap(self, texts: list[str], audio_s: float) -> list[str]:
        """A decode the token cap ended: a loop stopped before its second copy was whole, so ``looks_looped``
        (which wants two whole copies back to back) cannot see it. Speech never gets here: see
        ``AsrSettings.tokens_per_second``. The cap leaves room for at least ``MIN_REPEAT_WORDS`` words of the
        copy, which is what ``cut_at_repeat`` needs; with no repeated run the text stays as it came."""
        capped = " ".join(texts)
        cut = cut_at_repeat(capped)
        if cut != capped:
            log.info("the token cap ended a loop on a %.1f s phrase; kept the first copy", audio_s)
            log.debug("looped: %r, kept: %r", texts, cut)
            return [cut]
        return texts

    def _tokens_decoded(self) -> int:
        import _pywhispercpp as pw

        return sum(pw.whisper_full_n_tokens(self._ctx, i) for i in range(pw.whisper_full_n_segments(self._ctx)))

    def warm_up(self) -> None:
        """Decode one second of silence, so the first dictation does not pay whisper's first-call setup."""
        self.transcribe(np.zeros(SAMPLE_RATE, np.float32))

    def _decode(
        self, audio: npt.NDArray[np.float32], params: dict[str, Any], stop: Callable[[], bool] | None = None
    ) -> list[str]:
        import _pywhispercpp as pw

        for name, value in params.items():
            setattr(self._params, name, value)
        pw.assign_abort_callback(self._params, stop)
        try:
            status = pw.whisper_full(self._ctx, self._params, audio, audio.size)
        finally:
            pw.assign_abort_callback(self._params, None)
        if status != 0 and stop is not None and stop():
            raise _Stopped
        if status != 0:
            raise ModelError(f"whisper could not decode {audio.size / SAMPLE_RATE:.1f} s of audio (error {status})")
        texts = (pw.whisper_full_get_segment_text(self._ctx, i) for i in range(pw.whisper_full_n_segments(self._ctx)))
        return [text for text in (raw.decode("utf-8", errors="replace").strip() for raw in texts) if text]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _whisper_thread.run(self._free)
        _engines.discard(self)

    def _free(self) -> None:
        """On the whisper thread, after any decode still running there (its caller may have been interrupted):
        that decode still reads ``_ctx``, and the binding passes None on to whisper.cpp as a null pointer."""
        import _pywhispercpp as pw

        context, self._ctx = self._ctx, None
        pw.whisper_free(context)

    def __enter__(self) -> WhisperEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
