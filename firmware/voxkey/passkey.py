"""The Bluetooth passkey the user says: from BlueZ's request to the six digits, never to the host as text.

With ``bluetooth.pairing: passkey`` a host that pairs shows six digits and
BlueZ asks voxkey's agent for them (``RequestPasskey``). The agent, on the
Bluetooth thread, calls ``SpokenPasskey.request``, which hands the main loop a
``PasskeyWanted`` event and returns a future. The main loop shows "say the
code" on the LED; the next recording (the usual press, speak, release) is a
*code recording*: whisper transcribes it with ``PASSKEY_PROMPT`` and the text
goes to ``heard`` instead of the typist. Six digits resolve the future (the
agent answers BlueZ); anything else flashes "code not understood" and the
request stays open, so the user says it again while the host still waits.
BlueZ cancelling (the host gave up, the kernel's 30 s pairing timer) cancels
the future, which reaches the loop as ``PasskeyWithdrawn``.

The main loop owns everything here except ``request``, which only posts.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from voxkey.asr import AsrSettings, PhraseTranscriber, Transcript, WhisperEngine
from voxkey.audio import Samples
from voxkey.text.digits import PASSKEY_DIGITS, passkey_from_speech, read_digits

log = logging.getLogger(__name__)

PASSKEY_PROMPT = "Pairing code: 5 8 1 3 0 6."
"""whisper's prompt for a code recording: digits written as digits, one by one.

Measured on 20 espeak-ng codes with tiny.en, two runs (``benchmarks/spoken_codes.py``):
14-15 read right with it and none as a wrong code; 11 right without it, and once
a wrong six-digit code (``For 7.01.02`` for "four seven oh nine one two").
Its digits are none of a code said in the tests, and a silent recording gives
no text at all (the VAD finds no phrase), so the prompt is never copied as a code."""

CODE_AUDIO_CTX = 1024
"""Encoder positions (20.5 s) for decoding a code recording again when it gave more digits than a code.

With the window sized to the speech (~5 s), tiny.en often said the code and then began it again ("8 1 9 1 6 6
8 1 9 1 6"): too many digits, and the user was asked again while BlueZ's 30 s ran. Right / again / wrong,
``benchmarks/spoken_codes.py --random 90 --seed 21`` (90 random codes said the kernel case's three ways):
sized, then this window for too many digits (the daemon) 223 / 46 / 1; sized alone 179 / 88 / 3; this window
alone 214 / 55 / 1. Said quickly without pauses, the code was right 67 times in 90 against 37 sized. Why not
always this window: it reads fewer codes right than the two steps, and costs every code 2.4x the time
(0.55 s against 0.23 s here on one thread; 12.6 s against 3.4 s in the kernel tests' instruction-clock guest).
1024 is also the widest window a dictation phrase gets (``vad.max_phrase_s``): pairing raises no memory peak."""


def code_prompt(prompt: str | None) -> str:
    """``PASSKEY_PROMPT`` in front of the session's own prompt: what a code recording is decoded with."""
    return " ".join(p for p in (PASSKEY_PROMPT, prompt or "") if p)


PasskeySource = Callable[[str], "concurrent.futures.Future[str]"]


@runtime_checkable
class PasskeyEntry(Protocol):
    """A pairing control that can be given a passkey source (``BluetoothPeripheral``)."""

    def set_passkey_source(self, source: PasskeySource | None) -> None: ...


@dataclass(frozen=True)
class PasskeyRequest:
    """BlueZ waits for the passkey ``device`` shows; ``future`` takes its digits."""

    device: str
    future: concurrent.futures.Future[str]


@dataclass(frozen=True)
class PasskeyWanted:
    request: PasskeyRequest


@dataclass(frozen=True)
class PasskeyWithdrawn:
    """BlueZ cancelled the request (or it was answered): the loop stops waiting for a code."""

    request: PasskeyRequest


class SpokenPasskey:
    """The passkey request waiting for the user's words, as the main loop sees it."""

    def __init__(self, post: Callable[[PasskeyWanted | PasskeyWithdrawn], None]) -> None:
        self.post = post
        self.pending: PasskeyRequest | None = None
        self.misheard = 0
        """Code recordings that did not give six digits (for the log and the tests)."""

    @property
    def waiting(self) -> bool:
        """A host shows a code and voxkey waits for the user to say it."""
        return self.pending is not None

    def request(self, device: str) -> concurrent.futures.Future[str]:
        """The agent's ``passkey_source``: called on the Bluetooth thread, only posts to the loop."""
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        request = PasskeyRequest(device, future)
        future.add_done_callback(lambda _: self.post(PasskeyWithdrawn(request)))
        self.post(PasskeyWanted(request))
        return future

    def wanted(self, request: PasskeyRequest) -> None:
        if request.future.done():
            return  # cancelled before the loop saw it
        self.pending = request
        log.info("pairing: say the %d-digit code the host shows (press, speak, release)", PASSKEY_DIGITS)

    def withdrawn(self, request: PasskeyRequest) -> None:
        if self.pending is request:
            self.pending = None
            if request.future.cancelled():
                log.info("pairing: the host stopped waiting for the code")

    def heard(self, text: str, said_for: PasskeyRequest | None) -> bool:
        """A code recording's text: True if it gave the passkey (the agent answers), False to say it again.

        ``said_for`` is the request that was waiting when the recording started (``pending`` then). Only
        that request takes it: a code said for a host that gave up meanwhile is another host's code, or
        an old one of the same host (in the kernel tests a slow decode of a code said too late for one
        request arrived while the next request waited, and was entered there).
        """
        request = self.pending
        if request is None:
            return True  # the host gave up meanwhile; nothing to answer, nothing to type
        if said_for is not request:
            log.info("pairing: a code said for a request the host gave up on; not entered")
            return True  # the "say the code" light stays on for the request that waits now
        passkey = passkey_from_speech(text)
        if passkey is None:
            self.misheard += 1
            heard = read_digits(text).digits
            # not the words: a code with a digit missing is most of the secret
            log.warning("pairing: heard %d digits, not %d: say the code again", len(heard), PASSKEY_DIGITS)
            return False
        self.pending = None
        try:
            request.future.set_result(passkey)
        except concurrent.futures.InvalidStateError:
            log.info("pairing: the host stopped waiting before the code was heard")
            return True
        log.info("pairing: code heard, entering it")  # the digits stay out of the log
        return True

    def close(self) -> None:
        """The daemon stops: BlueZ gets a rejection instead of waiting for its timeout."""
        request, self.pending = self.pending, None
        if request is not None:
            request.future.cancel()


class PasskeyEngine:
    """The daemon's engine, transcribing with ``PASSKEY_PROMPT`` in front of the session's own prompt.

    Always the on-device model, also with ``asr.remote`` on: the code is the
    pairing's secret and stays on the device (a Wyoming server is plain TCP),
    and a server may ignore the prompt.
    """

    def __init__(self, engine: PhraseTranscriber) -> None:
        from voxkey.remote.engine import RemoteEngine

        self.engine: PhraseTranscriber = engine.local if isinstance(engine, RemoteEngine) else engine

    @property
    def settings(self) -> AsrSettings:
        """The engine's settings without the dictation's context (``context_words`` 0).

        A code is digits said once, not a sentence: with "5 8 1" as its prompt, whisper may say those digits
        again in "3 0 6", and nine digits ask the user for the code again (too short a copy for
        ``DictationSession``'s copy check).
        """
        return replace(self.engine.settings, context_words=0)

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def decodes_whole_window(self) -> bool:
        return self.engine.decodes_whole_window

    def transcribe(
        self,
        samples: Samples | npt.NDArray[np.float32],
        prompt: str | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        """Whisper without its dictation loop repair; more digits than a code: once more with ``CODE_AUDIO_CTX``.

        The dictation's repair cuts a loop to its first copy, which can be a wrong code, and a code said in
        pieces (a pause in the middle) comes as phrases of fewer digits, so only too many digits call for the
        wider window, and what that gives is the answer: the wrong count asks the user again.
        """
        full_prompt = code_prompt(prompt)
        if not isinstance(self.engine, WhisperEngine):
            return self.engine.transcribe(samples, prompt=full_prompt, stop=stop)
        sized = self.engine.transcribe(samples, prompt=full_prompt, stop=stop, repair_loops=False)
        if sized.stopped or len(read_digits(sized.text).digits) <= PASSKEY_DIGITS:
            return sized
        log.debug("a code recording gave more digits than a code; decoding it again with %d positions", CODE_AUDIO_CTX)
        wider = self.engine.transcribe(
            samples, prompt=full_prompt, stop=stop, repair_loops=False, min_audio_ctx=CODE_AUDIO_CTX
        )
        return replace(wider, compute_s=sized.compute_s + wider.compute_s)

    def warm_up(self) -> None:
        """The daemon's engine is warm already."""

    def close(self) -> None:
        """The daemon's engine is closed by the daemon."""
