"""Voice activity detection: cut a recording into phrases and throw the silence away.

webrtcvad labels each 10/20/30 ms frame as voiced or not. A phrase opens when
most of the last ``padding_ms`` is voiced (one voiced frame in noise is not
speech) and starts up to ``padding_ms`` before its first voiced frame; it ends
``tail_ms`` after its last voiced frame. Whisper clips words whose onset or
tail is cut off, so both edges keep some sound; everything beyond them is
dropped: whisper never sees long pauses, where it likes to invent words.

Only the first ``tail_heard_ms`` of the tail is what the microphone heard (the
fading end of a word that webrtcvad no longer calls voiced); the rest is
digital silence. So a phrase's audio is known ``tail_heard_ms`` after its last
word instead of ``tail_ms``: a speaker who releases the button as they finish
gets the last phrase decoded that much sooner. On the benchmark's 12 dictations
and the 26 recordings of ``../shared/speech``, 90 ms heard and 90 ms of silence
gave the same 38 texts as 180 ms heard; 30 ms heard lost 3 words.

Where phrases end decides both accuracy and the wait after release:

* a pause of ``phrase_pause_ms`` always ends a phrase;
* a shorter pause (``short_pause_ms``) ends a phrase only once it holds
  ``long_phrase_s`` of audio: short phrases lose the context whisper needs,
  while long phrases make the phrase still open at release long, and that one
  is decoded after the button comes up. With tiny.en and the last 8 words as
  prompt, on the benchmark's 12 dictations (seeds 1-3, 935 words; plain
  whole-recording whisper: 22 errors, 3 case or sentence-end errors) and the
  26 recordings of ``../shared/speech`` (495 words):

  ============  ==========  ======  ======  =====================
  long_phrase   dictations  format  corpus  last phrase over 6 s
  ============  ==========  ======  ======  =====================
  3 s           26          6       25      0 of 12
  4 s           22          5       21      0 of 12
  **5 s**       **22**      **4**   **17**  **1 of 12** (6.5 s)
  6 s (before)  21          6       17      5 of 12 (up to 8.7 s)
  ============  ==========  ======  ======  =====================

  The phrase open at release is decoded while the user waits, and its
  encoder window grows in blocks of 5.12 s (``audio_ctx_for``). Longer
  pauses (240-300 ms) at 5-6 s gave 19-20 errors, but left a 9.4 s phrase
  open at the end of a 66 s dictation;
* speech without such a pause is cut at its longest recent pause once it
  reaches ``max_phrase_s``.

Every rule looks at the audio only, never at when it arrived, so the same
recording always gives the same phrases. No frame belongs to two phrases.

A phrase's audio is complete ``tail_heard_ms`` after its last voiced frame, even if
the pause that will end it has not been long enough yet: :meth:`PhraseSegmenter.candidate`
hands that audio out early so it can be transcribed speculatively (if the
speaker stops here, its text is ready when the phrase closes, or when the
button comes up).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import webrtcvad

from voxkey.audio import SAMPLE_RATE, Samples
from voxkey.speech_settings import VadSettings as VadSettings  # defined apart, light to import; re-exported


@dataclass
class Phrase:
    """A stretch of speech with its padding, ready for whisper."""

    samples: Samples
    start_s: float  # position in the recording
    speech_ms: int  # voiced audio inside it
    index: int = 0
    dynamic_db: float = 0.0  # spread of frame loudness (90th - 10th percentile)
    cut_short: bool = False
    """Ended at a pause shorter than ``phrase_pause_ms`` (or split for length): the sentence may go on."""
    pause_before_ms: int | None = None
    """Silence between the previous phrase's last voiced frame and this one's first (None: the first phrase)."""

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE

    @property
    def key(self) -> tuple[float, int]:
        """Where it starts and how long it is: two phrases of one recording with the same key hold the same audio."""
        return (self.start_s, int(self.samples.size))


@dataclass
class _Frame:
    samples: Samples
    voiced: bool


@dataclass
class _OpenPhrase:
    frames: list[_Frame] = field(default_factory=list)
    start_frame: int = 0
    trailing_silence: int = 0  # frames
    candidate: tuple[int, Phrase | None] | None = None
    pause_before: int | None = None  # frames of silence since the previous phrase's speech


class PhraseSegmenter:
    """Feed samples of any length; take closed phrases as they come.

    Not thread-safe: one segmenter per recording, fed from one thread.
    """

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        frame_ms = self.settings.frame_ms
        self._frame_len = SAMPLE_RATE * frame_ms // 1000
        self._pad_frames = max(1, self.settings.padding_ms // frame_ms)
        self._tail_frames = max(1, self.settings.tail_ms // frame_ms)
        self._heard_frames = max(1, self.settings.tail_heard_ms // frame_ms)  # <= _tail_frames: VadSettings checks
        self._silent_frame = _Frame(np.zeros(self._frame_len, np.int16), voiced=False)
        self._pause_frames = max(1, self.settings.phrase_pause_ms // frame_ms)
        self._short_pause_frames = max(1, self.settings.short_pause_ms // frame_ms)
        self._long_phrase_frames = int(self.settings.long_phrase_s * 1000) // frame_ms
        self._max_frames = int(self.settings.max_phrase_s * 1000) // frame_ms
        self._min_voiced = max(1, self.settings.min_speech_ms // frame_ms)
        # twice the padding: the last half decides whether speech started, the first half is its lead-in
        self._window: deque[_Frame] = deque(maxlen=2 * self._pad_frames)
        self._pending = np.zeros(0, np.int16)
        self._open: _OpenPhrase | None = None
        self._frames_seen = 0
        self._emitted = 0
        self._last_voiced_at: int | None = None  # frame number of the last voiced frame of the last phrase
        self.dropped = 0  # phrases rejected for too little speech
        self.total_samples = 0

    @property
    def settled(self) -> bool:
        """No speech is going on: nothing is open, or the open phrase's audio is complete (see ``candidate``)."""
        return self._open is None or self._open.trailing_silence >= self._heard_frames

    @property
    def silence_ms(self) -> int:
        """How long the speaker has been silent inside the open phrase (0 while they speak or nothing is open)."""
        return 0 if self._open is None else self._open.trailing_silence * self.settings.frame_ms

    def outgrown(self, key: tuple[float, int]) -> bool:
        """Whether speech went on in the open phrase past the candidate with this ``key``.

        Then no way of ending the phrase gives the candidate's audio any more, so a guess at it is
        wasted. False for a candidate whose phrase has closed (exactly as it was, or not).
        """
        current = self._open
        if current is None or current.start_frame * self._frame_len / SAMPLE_RATE != key[0]:
            return False
        return (len(current.frames) - current.trailing_silence) * self._frame_len > key[1]

    def feed(self, samples: Samples) -> list[Phrase]:
        """Run VAD over new audio; return the phrases that this audio closed."""
        self.total_samples += samples.size
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        usable = data.size - data.size % self._frame_len
        self._pending = data[usable:].copy()
        closed: list[Phrase] = []
        for offset in range(0, usable, self._frame_len):
            frame = data[offset : offset + self._frame_len]
            voiced = self._vad.is_speech(frame.astype("<i2").tobytes(), SAMPLE_RATE)
            phrase = self._step(_Frame(frame, voiced))
            if phrase is not None:
                closed.append(phrase)
        return closed

    def candidate(self) -> Phrase | None:
        """The open phrase as it will be if the speaker has stopped: None while speech goes on.

        Once ``tail_heard_ms`` of silence follow the last voiced frame, every way the
        phrase can still end (a pause long enough, the end of the recording)
        gives exactly this audio, unless speech resumes first.
        """
        current = self._open
        if current is None or current.trailing_silence < self._heard_frames:
            return None
        cut = len(current.frames) - current.trailing_silence + self._tail_frames
        if current.candidate is None or current.candidate[0] != cut:  # built once per pause, not per frame
            phrase = self._phrase(self._ending(current), current.start_frame, current.pause_before, count=False)
            current.candidate = (cut, phrase)
        return current.candidate[1]

    def _ending(self, current: _OpenPhrase) -> list[_Frame]:
        """The open phrase's frames if it ends after its last voiced frame: ``tail_heard_ms`` of what was heard,
        then digital silence up to ``tail_ms``."""
        spoken = len(current.frames) - current.trailing_silence
        heard = current.frames[: spoken + min(self._heard_frames, current.trailing_silence)]
        return heard + [self._silent_frame] * (spoken + self._tail_frames - len(heard))

    def flush(self) -> list[Phrase]:
        """End of recording: close the open phrase, if any."""
        if self._pending.size:
            pad = np.zeros(self._frame_len - self._pending.size, np.int16)
            self._pending = np.zeros(0, np.int16)
            closed = self.feed(pad)
            self.total_samples -= pad.size
        else:
            closed = []
        current, self._open = self._open, None
        if current is not None:
            phrase = self._phrase(self._ending(current), current.start_frame, current.pause_before)
            if phrase is not None:
                closed.append(phrase)
        return closed

    def _step(self, frame: _Frame) -> Phrase | None:
        self._frames_seen += 1
        if self._open is None:
            self._maybe_open(frame)
            return None
        current = self._open
        current.frames.append(frame)
        current.trailing_silence = 0 if frame.voiced else current.trailing_silence + 1
        if self._pause_ends(current):
            return self._end_at_pause(current)
        if len(current.frames) >= self._max_frames:
            return self._split_long(current)
        return None

    def _maybe_open(self, frame: _Frame) -> None:
        self._window.append(frame)
        recent = list(self._window)[-self._pad_frames :]
        voiced = sum(1 for f in recent if f.voiced)
        if frame.voiced and voiced >= self.settings.start_ratio * self._pad_frames:
            frames = list(self._window)
            first_voiced = len(frames) - len(recent) + next(i for i, f in enumerate(recent) if f.voiced)
            lead_in = max(0, first_voiced - self._pad_frames)
            start = self._frames_seen - len(frames) + lead_in
            first_voiced_at = self._frames_seen - len(frames) + first_voiced
            pause = None if self._last_voiced_at is None else first_voiced_at - self._last_voiced_at - 1
            self._open = _OpenPhrase(frames[lead_in:], start, pause_before=pause)
            self._window.clear()

    def _pause_ends(self, current: _OpenPhrase) -> bool:
        """A long pause ends any phrase; a short one only a phrase long enough to stand on its own."""
        silence = current.trailing_silence
        if silence >= self._pause_frames:
            return True
        spoken = len(current.frames) - silence
        return silence >= self._short_pause_frames and spoken >= self._long_phrase_frames

    def _end_at_pause(self, current: _OpenPhrase) -> Phrase | None:
        """This phrase keeps ``tail_ms`` of the pause; the rest is lead-in material for the next one."""
        self._open = None
        cut = len(current.frames) - current.trailing_silence + self._tail_frames
        self._window.extend(current.frames[cut:])
        short = current.trailing_silence < self._pause_frames
        return self._phrase(self._ending(current), current.start_frame, current.pause_before, cut_short=short)

    def _split_long(self, current: _OpenPhrase) -> Phrase | None:
        """Cut an overlong phrase in the middle of its longest recent pause (or hard, if none)."""
        frames = current.frames
        search_from = max(self._pad_frames, len(frames) - 5000 // self.settings.frame_ms)
        best_start, best_len, run_start = len(frames), 0, -1
        for i in range(search_from, len(frames)):
            if not frames[i].voiced:
                if run_start < 0:
                    run_start = i
                if i - run_start + 1 > best_len:
                    best_start, best_len = run_start, i - run_start + 1
            else:
                run_start = -1
        cut = best_start + best_len // 2 if best_len else len(frames)
        rest = frames[cut:]
        phrase = self._phrase(frames[:cut], current.start_frame, current.pause_before, cut_short=True)
        self._open = _OpenPhrase(rest, current.start_frame + cut, pause_before=0) if rest else None
        if self._open is not None:
            self._open.trailing_silence = _trailing_silence(rest)
        return phrase

    def _phrase(
        self,
        frames: list[_Frame],
        start_frame: int,
        pause_before: int | None,
        count: bool = True,
        cut_short: bool = False,
    ) -> Phrase | None:
        """A phrase of these frames, or None for a cough, a click or steady noise."""
        voiced = sum(1 for f in frames if f.voiced)
        if voiced < self._min_voiced:
            self.dropped += count
            return None
        samples = np.concatenate([f.samples for f in frames])
        heard = len(frames) - sum(1 for _ in itertools.takewhile(lambda f: f is self._silent_frame, reversed(frames)))
        spread = loudness_spread_db(samples[: heard * self._frame_len], self._frame_len)
        if spread < self.settings.min_dynamic_db:
            self.dropped += count
            return None
        start_s = start_frame * self._frame_len / SAMPLE_RATE
        frame_ms = self.settings.frame_ms
        pause_ms = None if pause_before is None else pause_before * frame_ms
        phrase = Phrase(samples, start_s, voiced * frame_ms, self._emitted, spread, cut_short, pause_ms)
        if count:
            self._emitted += 1
            self._last_voiced_at = start_frame + max(i for i, f in enumerate(frames) if f.voiced)
        return phrase


def _trailing_silence(frames: list[_Frame]) -> int:
    count = 0
    for frame in reversed(frames):
        if frame.voiced:
            break
        count += 1
    return count


def loudness_spread_db(samples: Samples, frame_len: int = 480) -> float:
    """How much frame loudness varies (90th minus 10th percentile, dB).

    webrtcvad calls white noise and broadband fan noise "speech"; what gives
    them away is that they are steady, while speech comes in syllables. Clean
    speech measures 25-35 dB here, speech in heavy noise ~15 dB, steady noise
    under 1 dB.
    """
    usable = samples.size - samples.size % frame_len
    if usable < frame_len * 2:
        return 0.0
    frames = samples[:usable].reshape(-1, frame_len).astype(np.float64)
    energy_db = 10.0 * np.log10((frames**2).mean(axis=1) + 1.0)
    return float(np.percentile(energy_db, 90) - np.percentile(energy_db, 10))


def split_phrases(samples: Samples, settings: VadSettings | None = None) -> list[Phrase]:
    """Whole-recording convenience: every phrase in ``samples``."""
    segmenter = PhraseSegmenter(settings)
    return segmenter.feed(samples) + segmenter.flush()


def speech_ms(samples: Samples, settings: VadSettings | None = None) -> int:
    """Voiced audio in a recording, per webrtcvad, in milliseconds."""
    settings = settings or VadSettings()
    vad = webrtcvad.Vad(settings.aggressiveness)
    frame_len = SAMPLE_RATE * settings.frame_ms // 1000
    voiced = 0
    for offset in range(0, samples.size - frame_len + 1, frame_len):
        if vad.is_speech(samples[offset : offset + frame_len].astype("<i2").tobytes(), SAMPLE_RATE):
            voiced += 1
    return voiced * settings.frame_ms
