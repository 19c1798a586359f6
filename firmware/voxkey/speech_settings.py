"""Settings of the speech path (the config file's ``audio:``, ``vad:`` and ``asr:`` sections).

They live apart from the code they configure: ``voxkey.audio``, ``voxkey.vad``
and ``voxkey.asr`` import numpy, soxr and webrtcvad (about 0.1 s on a PC, an
estimated 0.3-0.4 s on a Pi Zero 2 W), and ``voxkey config check``, the start
of ``voxkey doctor`` and ``voxkey type`` read these sections without them.
Those modules re-export their class, so ``from voxkey.asr import AsrSettings``
keeps working.

Each class follows the settings convention of ``voxkey.config``: frozen, a
docstring under every setting, and ``__post_init__`` raising ``ConfigError``
that names the settings at fault (the config reader turns them into lines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from voxkey.errors import ConfigError
from voxkey.models import DEFAULT_MODEL
from voxkey.remote.settings import RemoteSettings

FULL_AUDIO_CTX = 1500
"""Encoder positions of whisper's whole 30 s window (50 a second)."""


@dataclass(frozen=True)
class AudioSettings:
    """Capture settings (the config file's ``audio:`` section)."""

    device: str | int | None = None
    """Input device name (a case-insensitive substring) or index; None: the default input."""
    block_ms: int = 30
    """Capture block; 10, 20 or 30 ms keep blocks aligned with VAD frames."""
    pre_roll_ms: int = 300
    """Sound kept from before the button press."""
    post_roll_ms: int = 300
    """Sound kept after the button release, at most: only while the speaker is mid-phrase."""
    min_post_roll_ms: int = 90
    """... and at least this much (audio still in the device's buffer at release)."""
    min_recording_ms: int = 300
    """Shorter presses are taps, not dictation: they type nothing."""
    max_recording_s: float = 300.0
    """Bounds memory; a recording stops by itself after this."""
    stall_timeout_s: float = 2.0
    """No audio for this long while recording means the device is gone."""

    def __post_init__(self) -> None:
        """Values the capture core can run with.

        Found by fuzzing the config file: a negative ``stall_timeout_s`` failed in the middle of the
        first recording, a long negative pre-roll at start, both with a traceback.
        """
        if not 1 <= self.block_ms <= 1000:
            raise ConfigError(f"audio.block_ms must be 1 to 1000, not {self.block_ms}", settings=("block_ms",))
        for name in ("pre_roll_ms", "post_roll_ms", "min_post_roll_ms", "min_recording_ms"):
            if not 0 <= getattr(self, name) <= 60_000:
                raise ConfigError(f"audio.{name} must be 0 to 60000, not {getattr(self, name)}", settings=(name,))
        if not 0 < self.max_recording_s <= 3600:
            raise ConfigError(
                f"audio.max_recording_s must be more than 0 and at most 3600, not {self.max_recording_s}",
                settings=("max_recording_s",),
            )
        if self.stall_timeout_s <= 0:
            raise ConfigError(
                f"audio.stall_timeout_s must be greater than 0, not {self.stall_timeout_s}",
                settings=("stall_timeout_s",),
            )


@dataclass(frozen=True)
class VadSettings:
    """Phrase detection settings (the config file's ``vad:`` section; ``voxkey.vad`` explains the rules)."""

    aggressiveness: int = 3
    """webrtcvad's mode, 0 to 3; 3 rejects fan hum and hiss best."""
    frame_ms: int = 30
    """10, 20 or 30."""
    padding_ms: int = 300
    """Sound kept before speech; also the window that opens a phrase."""
    tail_ms: int = 180
    """Sound kept after the last voiced frame."""
    tail_heard_ms: int = 90
    """... of which this much is what the microphone heard; the rest is digital silence (see ``voxkey.vad``)."""
    start_ratio: float = 0.6
    """Share of voiced frames in that window needed to open a phrase."""
    phrase_pause_ms: int = 600
    """A pause at least this long always ends a phrase."""
    short_pause_ms: int = 180
    """... and a pause this long ends one that already holds ``long_phrase_s``."""
    long_phrase_s: float = 5.0
    """Phrases shorter than this keep going over short pauses (context for whisper); ``voxkey.vad`` says why 5."""
    min_speech_ms: int = 250
    """Phrases with less voiced audio are coughs and clicks: dropped."""
    max_phrase_s: float = 15.0
    """Speech without a short pause is cut at its longest pause once this long."""
    min_dynamic_db: float = 6.0
    """Speech rises and falls; steady hiss or hum (which fools webrtcvad) does not."""

    def __post_init__(self) -> None:
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
        if not self.frame_ms <= self.tail_ms <= self.short_pause_ms <= self.phrase_pause_ms:
            raise ConfigError(
                "vad needs frame_ms <= tail_ms <= short_pause_ms <= phrase_pause_ms, not "
                f"{self.frame_ms} <= {self.tail_ms} <= {self.short_pause_ms} <= {self.phrase_pause_ms}",
                settings=("tail_ms", "short_pause_ms", "phrase_pause_ms"),
            )
        if not self.frame_ms <= self.tail_heard_ms <= self.tail_ms:
            raise ConfigError(
                "vad needs frame_ms <= tail_heard_ms <= tail_ms, not "
                f"{self.frame_ms} <= {self.tail_heard_ms} <= {self.tail_ms}",
                settings=("tail_heard_ms", "tail_ms"),
            )
        if not 0.0 < self.long_phrase_s < self.max_phrase_s:
            raise ConfigError(
                f"vad.long_phrase_s must be between 0 and max_phrase_s, not {self.long_phrase_s}",
                settings=("long_phrase_s", "max_phrase_s"),
            )


@dataclass(frozen=True)
class AsrSettings:
    """Speech recognition settings (the config file's ``asr:`` section; ``voxkey.asr`` says why these defaults)."""

    model: str = DEFAULT_MODEL
    """whisper.cpp model name (tiny.en-q5_1, base.en-q8_0, ...) or a file path."""
    threads: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    """CPU threads whisper decodes with (default: the cores, at most 4)."""
    language: str = "en"
    """The language spoken, as whisper's code (``en``, ``de``, ...)."""
    initial_prompt: str = ""
    """Custom vocabulary or style, e.g. "Grafana, Kubernetes, voxkey."."""
    audio_ctx: str | int = "auto"
    """``auto``: sized to each phrase; 0: whisper's full 30 s window; N: that many encoder positions."""
    audio_ctx_margin_s: float = 0.5
    """Extra encoder context past the phrase end when sized automatically."""
    short_phrase_s: float = 2.0
    """``auto`` gives phrases shorter than this ``short_audio_ctx`` (see ``voxkey.asr``)."""
    short_audio_ctx: int = 256
    """Encoder positions (5.12 s) for phrases under ``short_phrase_s``; 0: the full window."""
    tokens_per_second: float = 5.0
    """Token cap = ``token_cap_base`` + this x phrase seconds (the repetition-loop guard).

    A loop runs to the cap, and every token is decoder time (~6 ms each with tiny.en here). On the
    benchmark's 12 dictations and the 26 recordings of ``../shared/speech``, 18 of 109 decodes looped;
    the other 91 used at most 4.8 tokens per phrase second (a brisk 2.9 s phrase, 14 tokens). 16 + 6/s
    let each loop run ~12 tokens longer than 10 + 5/s, which still leaves a brisk speaker 30 % headroom."""
    token_cap_base: int = 10
    """The token cap of a phrase of no length (see ``tokens_per_second``): past the fastest speech, room
    for at least 4 words of a loop's second copy, so the loop can be found and cut."""
    temperature_fallback: bool = False
    """whisper's own guard: re-decode a doubtful phrase hotter (slow, and not repeatable)."""
    context_words: int = 8
    """Words of the dictation so far given to whisper as the next phrase's prompt (0: none; see ``voxkey.asr``)."""
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    """An optional speech server on the local network (``voxkey.remote``)."""

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"asr.threads must be at least 1, not {self.threads}", settings=("threads",))
        if isinstance(self.audio_ctx, str) and self.audio_ctx != "auto":
            raise ConfigError(
                f"asr.audio_ctx must be 'auto' or a number of encoder positions, not {self.audio_ctx!r}",
                settings=("audio_ctx",),
            )
        if isinstance(self.audio_ctx, int) and not 0 <= self.audio_ctx <= FULL_AUDIO_CTX:
            raise ConfigError(
                f"asr.audio_ctx must be between 0 and {FULL_AUDIO_CTX}, not {self.audio_ctx}", settings=("audio_ctx",)
            )
        if self.context_words < 0:
            raise ConfigError(
                f"asr.context_words must be 0 or more, not {self.context_words}", settings=("context_words",)
            )
        if self.tokens_per_second <= 0 or self.token_cap_base < 1:
            at_fault = ("tokens_per_second",) if self.tokens_per_second <= 0 else ("token_cap_base",)
            raise ConfigError("asr.tokens_per_second and asr.token_cap_base must be positive", settings=at_fault)
