"""The phrase transcriber that asks the speech server first and the on-device model when it cannot.

It has the on-device engine's interface (``transcribe`` one phrase, ``settings``,
``warm_up``, ``close``), so ``DictationSession`` streams phrases to the server
exactly as it streams them to whisper.cpp: each phrase goes out as soon as the
VAD closes it, while the user is still talking, and the wait after release is
one round trip for the last phrase. Everything after the transcript (clean-up,
hallucination filter, commands, layout) is the session's and the daemon's, so
it is the same for both engines.

Per phrase: the server has ``timeout_s`` to answer. A failure (refused,
dropped, TLS, garbled answer) or no answer in time means the on-device model
transcribes this phrase, so nothing is typed twice and nothing is lost, and
the server is left alone until a background probe finds it back
(:mod:`voxkey.remote.health`): the rest of the dictation, and the ones after,
do not wait for it again. An answer that arrives but is not believable text
(empty, control characters, more words than anyone says in that time) is
replaced by the on-device text for that phrase only.

``fallback`` says when the on-device model starts on a phrase: ``at_deadline``
(only once the server has failed; costs nothing while the server works) or
``parallel`` (every phrase, so a missed deadline costs no extra decode, at the
price of running the on-device model all the time). Measured on 2 cores
(``benchmarks/remote.py --fallback``, timeout 1.5 s): a hanging server cost a
phrase +1.89 s over the device alone with ``at_deadline`` and +0.30 s with
``parallel``; a refused port cost nothing. Only the first phrase after a
failure pays it (the server is then skipped), so ``at_deadline`` is the
default: ``parallel`` would keep the device's CPU busy on every phrase to save
about one local decode once per outage.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from voxkey.asr import MAX_WORDS_PER_S, AsrSettings, Transcript, WhisperEngine
from voxkey.audio import SAMPLE_RATE, Samples
from voxkey.errors import RemoteAsrError
from voxkey.remote.clients import SpeechClient, client_for
from voxkey.remote.health import Backoff, ServerHealth
from voxkey.remote.settings import RemoteSettings

log = logging.getLogger(__name__)

_WORDS = re.compile(r"[\w']+")


@dataclass(frozen=True)
class PhraseOutcome:
    """Which engine gave a phrase's text, and how long the caller waited for it."""

    source: Literal["remote", "local"]
    raw: str
    audio_s: float
    wait_s: float
    error: str = ""  # why the server's text was not used ("" when it was, or when the server was known down)


def check_text(text: str, audio_s: float, where: str) -> None:
    """Raise unless ``text`` could be what was said in ``audio_s`` seconds (the server stays in use)."""
    if not text.strip():
        raise RemoteAsrError(f"{where} returned no text for a {audio_s:.1f} s phrase", server_fault=False)
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co") and c not in "\n\t" for c in text):
        raise RemoteAsrError(f"{where} returned control characters for a phrase", server_fault=False)
    words = len(_WORDS.findall(text))
    limit = MAX_WORDS_PER_S * max(audio_s, 1.0) + 2
    if words > limit or len(text) > 20 * limit:
        raise RemoteAsrError(
            f"{where} returned {words} words ({len(text)} characters) for a {audio_s:.1f} s phrase",
            server_fault=False,
        )


class RemoteEngine:
    """A speech server with the on-device engine as fallback; see the module docstring."""

    def __init__(
        self,
        local: WhisperEngine,
        remote: RemoteSettings,
        client: SpeechClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self.local = local
        self.remote = remote
        self.client = client or client_for(remote)
        self._clock = clock
        self.health = ServerHealth(
            self._probe, self.client.where, Backoff(remote.retry_min_s, remote.retry_max_s), clock, background
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="voxkey-remote")
        self._local_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxkey-local")
        self.outcomes: deque[PhraseOutcome] = deque(maxlen=1000)
        self._lock = threading.Lock()
        self._content_warned = False

    @property
    def settings(self) -> AsrSettings:
        return self.local.settings

    @property
    def name(self) -> str:
        return f"{self.client.where} (on-device fallback {self.local.name})"

    @property
    def language(self) -> str:
        return self.remote.language or self.local.settings.language

    @property
    def decodes_whole_window(self) -> bool:
        """A server's decode grows with the audio: phrases stay short, so text comes while the user talks.

        While the server is away, a multilingual on-device fallback pays a whole window per phrase.
        """
        return False

    def transcribe(
        self,
        samples: Samples | npt.NDArray[np.float32],
        prompt: str | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        """One phrase: the server's text if it gives a believable one in time, else the on-device model's.

        ``stop`` ends only an on-device decode early: a server answers in a fraction of that time.
        """
        started = self._clock()
        audio_s = samples.size / SAMPLE_RATE
        if not self.health.up:
            return self._local(samples, prompt, started, "", stop=stop)
        pcm = _pcm16(samples)
        asked = self._pool.submit(self.client.transcribe, pcm, self.language, prompt or "", self.remote.timeout_s)
        ahead = None
        if self.remote.fallback == "parallel":
            ahead = self._local_pool.submit(self.local.transcribe, samples, prompt, stop=stop)
        try:
            text = asked.result(timeout=self.remote.timeout_s)
            check_text(text, audio_s, self.client.where)
        except concurrent.futures.TimeoutError:
            error = RemoteAsrError(f"{self.client.where} gave no transcript within {self.remote.timeout_s:.1f} s")
            self.health.failed(error)
            return self._local(samples, prompt, started, str(error), ahead, stop)
        except RemoteAsrError as exc:
            if exc.server_fault:
                self.health.failed(exc)
            elif not self._content_warned:  # once per run of such answers: one line, not one per phrase
                self._content_warned = True
                log.warning("%s; typing the on-device model's text for such phrases", exc)
            return self._local(samples, prompt, started, str(exc), ahead, stop)
        wait_s = self._clock() - started
        self._content_warned = False
        self._record(PhraseOutcome("remote", text, audio_s, wait_s))
        text = text.strip()
        return Transcript(text, audio_s, wait_s, [text])

    def _local(
        self,
        samples: Samples | npt.NDArray[np.float32],
        prompt: str | None,
        started: float,
        error: str,
        ahead: concurrent.futures.Future[Transcript] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        transcript = ahead.result() if ahead is not None else self.local.transcribe(samples, prompt, stop=stop)
        self._record(PhraseOutcome("local", transcript.text, transcript.audio_s, self._clock() - started, error))
        return transcript

    def _record(self, outcome: PhraseOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def _probe(self) -> None:
        self.client.probe(self.remote.timeout_s)

    def check_now(self) -> None:
        """Probe the server now, in this thread (raises :class:`RemoteAsrError`); for ``voxkey doctor``."""
        self._probe()

    def warm_up(self) -> None:
        """Warm the on-device model; find out in the background whether the server answers."""
        self.local.warm_up()
        self._pool.submit(self._first_probe)

    def _first_probe(self) -> None:
        try:
            self._probe()
        except RemoteAsrError as exc:
            self.health.failed(exc)
        else:
            log.info("%s answers: dictation goes to it", self.client.where)

    def close(self) -> None:
        self.health.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._local_pool.shutdown(wait=False, cancel_futures=True)
        self.local.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pcm16(samples: Samples | npt.NDArray[np.float32]) -> bytes:
    if samples.dtype == np.int16:
        return samples.astype("<i2").tobytes()
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def build_engine(settings: AsrSettings) -> WhisperEngine | RemoteEngine:
    """The engine ``asr`` asks for: the on-device model, wrapped by the speech server when ``asr.remote`` is on."""
    local = WhisperEngine(settings)
    if not settings.remote.enabled:
        return local
    return RemoteEngine(local, settings.remote)
