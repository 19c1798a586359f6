"""Voice activity detection: cut a recording into phrases and throw the silence away.

webrtcvad labels each 10/20/30 ms frame as voiced or not. A phrase opens when
most of the last ``padding_ms`` is voiced (one voiced frame in noise is not
speech), and closes once ``phrase_pause_ms`` of silence follow it. Each phrase
keeps ``padding_ms`` of context on both sides, because whisper clips words
whose onset or tail is cut off, and drops everything beyond that: whisper
never sees long pauses, where it likes to invent words.

Phrases are emitted as soon as they close, which is what lets the dictation
session transcribe while the user is still talking.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import webrtcvad

from voxkey.audio import SAMPLE_RATE, Samples
from voxkey.errors import ConfigError


@dataclass
class VadSettings:
    """Phrase detection settings (the config file's ``vad:`` section)."""

    aggressiveness: int = 3  # webrtcvad mode 0..3; 3 rejects fan hum and hiss best
    frame_ms: int = 30  # 10, 20 or 30
    padding_ms: int = 300  # context kept before and after speech; also the window that opens a phrase
    start_ratio: float = 0.6  # share of voiced frames in that window needed to open a phrase
    phrase_pause_ms: int = 700  # a pause at least this long ends a phrase
    min_speech_ms: int = 250  # phrases with less voiced audio are coughs and clicks: dropped
    max_phrase_s: float = 25.0  # phrases are split before whisper's 30 s window
    min_dynamic_db: float = 6.0  # speech rises and falls; steady hiss or hum (which fools webrtcvad) does not

    def validate(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ConfigError(
                f"vad.aggressiveness must be 0, 1, 2 or 3, not {self.aggressiveness}", settings=("aggressiveness",)
            )
        if self.frame_ms not in (10, 20, 30):
            raise ConfigError(f"vad.frame_ms must be 10, 20 or 30, not {self.frame_ms}", settings=("frame_ms",))
        if not 0.0 < self.start_ratio <= 1.0:
            raise ConfigError(f"vad.start_ratio must be in (0, 1], not {self.start_ratio}", settings=("start_ratio",))
        if self.max_phrase_s <= 1.0 or self.max_phrase_s > 29.0:
            raise ConfigError(
                f"vad.max_phrase_s must be between 1 and 29 seconds, not {self.max_phrase_s}",
                settings=("max_phrase_s",),
            )


@dataclass
class Phrase:
    """A stretch of speech with its padding, ready for whisper."""

    samples: Samples
    start_s: float  # position in the recording
    speech_ms: int  # voiced audio inside it
    index: int = 0
    dynamic_db: float = 0.0  # spread of frame loudness (90th - 10th percentile)

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


@dataclass
class _Frame:
    samples: Samples
    voiced: bool


@dataclass
class _OpenPhrase:
    frames: list[_Frame] = field(default_factory=list)
    start_frame: int = 0
    trailing_silence: int = 0  # frames


class PhraseSegmenter:
    """Feed samples of any length; take closed phrases as they come.

    Not thread-safe: one segmenter per recording, fed from one thread.
    """

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self.settings.validate()
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        self._frame_len = SAMPLE_RATE * self.settings.frame_ms // 1000
        self._pad_frames = max(1, self.settings.padding_ms // self.settings.frame_ms)
        self._pause_frames = max(1, self.settings.phrase_pause_ms // self.settings.frame_ms)
        self._max_frames = int(self.settings.max_phrase_s * 1000) // self.settings.frame_ms
        self._min_voiced = max(1, self.settings.min_speech_ms // self.settings.frame_ms)
        # twice the padding: the last half decides whether speech started, the first half is its lead-in
        self._window: deque[_Frame] = deque(maxlen=2 * self._pad_frames)
        self._pending = np.zeros(0, np.int16)
        self._open: _OpenPhrase | None = None
        self._frames_seen = 0
        self._emitted = 0
        self.dropped = 0  # phrases rejected for too little speech
        self.total_samples = 0

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

    def flush(self) -> list[Phrase]:
        """End of recording: close the open phrase, if any."""
        if self._pending.size:
            pad = np.zeros(self._frame_len - self._pending.size, np.int16)
            self._pending = np.zeros(0, np.int16)
            closed = self.feed(pad)
            self.total_samples -= pad.size
        else:
            closed = []
        if self._open is not None:
            phrase = self._close(self._open)
            self._open = None
            if phrase is not None:
                closed.append(phrase)
        return closed

    def _step(self, frame: _Frame) -> Phrase | None:
        self._frames_seen += 1
        if self._open is None:
            self._window.append(frame)
            recent = list(self._window)[-self._pad_frames :]
            voiced = sum(1 for f in recent if f.voiced)
            if frame.voiced and voiced >= self.settings.start_ratio * self._pad_frames:
                frames = list(self._window)
                first_voiced = len(frames) - len(recent) + next(i for i, f in enumerate(recent) if f.voiced)
                lead_in = max(0, first_voiced - self._pad_frames)
                start = self._frames_seen - len(frames) + lead_in
                self._open = _OpenPhrase(frames[lead_in:], start)
                self._window.clear()
            return None
        current = self._open
        current.frames.append(frame)
        current.trailing_silence = 0 if frame.voiced else current.trailing_silence + 1
        if current.trailing_silence >= self._pause_frames:
            self._open = None
            keep_tail = current.frames[-self._pad_frames :]
            phrase = self._close(current)
            self._window.extend(keep_tail)
            return phrase
        if len(current.frames) >= self._max_frames:
            return self._split_long(current)
        return None

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
        head = _OpenPhrase(frames[:cut], current.start_frame)
        rest = frames[cut:]
        self._open = _OpenPhrase(rest, current.start_frame + cut) if rest else None
        return self._close(head, trim_tail=False)

    def _close(self, current: _OpenPhrase, trim_tail: bool = True) -> Phrase | None:
        frames = current.frames
        if trim_tail:
            last_voiced = max((i for i, f in enumerate(frames) if f.voiced), default=-1)
            frames = frames[: last_voiced + 1 + self._pad_frames]
        voiced = sum(1 for f in frames if f.voiced)
        if voiced < self._min_voiced:
            self.dropped += 1
            return None
        samples = np.concatenate([f.samples for f in frames])
        spread = loudness_spread_db(samples, self._frame_len)
        if spread < self.settings.min_dynamic_db:
            self.dropped += 1
            return None
        start_s = current.start_frame * self._frame_len / SAMPLE_RATE
        phrase = Phrase(samples, start_s, voiced * self.settings.frame_ms, self._emitted, spread)
        self._emitted += 1
        return phrase


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
