"""Fuzz the WAV reader behind ``voxkey transcribe`` and ``voxkey run --audio-file`` (``voxkey.audio.read_wav``,
played through ``WavFileSource``).

A damaged, truncated or exotic file gives 16 kHz mono int16 samples or an ``AudioError`` that names the
file, never another exception, and never a hang: the whole source is played to its end under an alarm.
Files are built from a real WAV's parts (RIFF header, ``fmt `` and ``data`` chunks, unknown chunks) with
random fields, then cut short or garbled, so the fuzzer spends its time past the magic bytes.

Budget (CI): 400 structured + 200 raw-byte + 100 float examples, about 10 s on the 2-core dev machine.
"""

from __future__ import annotations

import signal
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from voxkey.audio import AudioSettings, WavFileSource, read_wav
from voxkey.errors import AudioError

from . import budget

HANG_S = 20  # far beyond any real read (milliseconds); only a loop that never ends reaches it


class Hang(Exception):
    pass


@contextmanager
def no_hang(seconds: int = HANG_S) -> Iterator[None]:
    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    size = len(body) if size is None else size
    return chunk_id + struct.pack("<I", size & 0xFFFFFFFF) + body + (b"\0" if len(body) % 2 else b"")


def fmt_body(tag: int, channels: int, rate: int, bits: int, extra: bytes = b"") -> bytes:
    block_align = (channels * bits // 8) & 0xFFFF
    return struct.pack("<HHIIHH", tag, channels, rate, (rate * block_align) & 0xFFFFFFFF, block_align, bits) + extra


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
tags = st.sampled_from([1, 3, 0xFFFE, 0, 2, 6, 7, 0x55]) | u16
channel_counts = st.sampled_from([1, 2, 6]) | u16
rates = st.sampled_from([16000, 44100, 48000, 8000, 1000, 999, 768_000, 768_001]) | u32
bit_depths = st.sampled_from([8, 16, 24, 32, 64]) | u16
size_fields = st.sampled_from([0, 1, 0xFFFFFFFF, 0x7FFFFFFF]) | u32


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    tag, channels, rate, bits = draw(tags), draw(channel_counts), draw(rates), draw(bit_depths)
    extension = b""
    if tag == 0xFFFE or draw(st.booleans()):
        extension = struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", draw(tags)) + bytes(14)
    fmt = fmt_body(tag, channels, rate, bits, extension)
    if draw(st.booleans()):
        fmt = fmt[: draw(st.integers(0, len(fmt)))]  # a format header cut short
    audio = draw(st.binary(max_size=4000))
    chunks = [
        chunk(b"fmt ", fmt, draw(st.none() | size_fields)),
        chunk(b"data", audio, draw(st.none() | size_fields)),
    ]
    if draw(st.booleans()):
        chunks.insert(
            draw(st.integers(0, 2)), chunk(draw(st.binary(min_size=4, max_size=4)), draw(st.binary(max_size=30)))
        )
    if draw(st.booleans()):
        chunks.reverse()  # data before fmt
    body = b"WAVE" + b"".join(chunks)
    riff = draw(st.sampled_from([b"RIFF", b"RIFX", b"RF64"])) if draw(st.booleans()) else b"RIFF"
    blob = riff + struct.pack("<I", draw(st.none() | size_fields) or len(body)) + body
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]  # truncated anywhere, headers included
    for _ in range(draw(st.integers(0, 3))):  # a few garbled bytes
        at = draw(st.integers(0, max(0, len(blob) - 1)))
        blob = blob[:at] + bytes([draw(st.integers(0, 255))]) + blob[at + 1 :]
    return blob


def check(blob: bytes, path: Path) -> np.ndarray | None:
    """Read and play ``blob`` as a WAV file: samples or an AudioError naming the file, in bounded time."""
    path.write_bytes(blob)
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an invalid cast is garbage audio, not a clean read
        try:
            samples, info = read_wav(path)
        except AudioError as exc:
            assert str(exc).startswith(f"{path}: "), exc
            return None
        assert samples.dtype == np.int16 and samples.ndim == 1
        assert info.channels >= 1 and 1000 <= info.sample_rate <= 768_000
        source = WavFileSource(path, AudioSettings(stall_timeout_s=5.0), realtime=False, auto_listen=True)
        with source:
            played = sum(block.size for block in source.frames())
        assert played == samples.size and source.error is None
    return samples


@budget(400)
@given(wav_files())
@example(b"")
@example(b"RIFF\x00\x00\x00\x00WAVE")
def test_structured_wav_files_read_or_fail_clearly(tmp_path: Path, blob: bytes) -> None:
    check(blob, tmp_path / "fuzz.wav")


@budget(200)
@given(st.binary(max_size=200).map(lambda tail: b"RIFF\x24\x00\x00\x00WAVE" + tail) | st.binary(max_size=64))
def test_raw_bytes_read_or_fail_clearly(tmp_path: Path, blob: bytes) -> None:
    check(blob, tmp_path / "raw.wav")


floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


@budget(100)
@given(st.lists(floats, max_size=400), st.sampled_from([32, 64]), st.sampled_from([16000, 48000]))
@example([0.5, float("nan"), 0.25], 32, 16000)  # finding: NaN became int16 garbage (an invalid cast)
@example([float("inf")], 64, 48000)
def test_float_wav_with_nan_or_inf_is_refused(tmp_path: Path, values: list[float], bits: int, rate: int) -> None:
    data = np.array(values, "<f4" if bits == 32 else "<f8").tobytes()
    blob = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    blob += chunk(b"fmt ", fmt_body(3, 1, rate, bits)) + chunk(b"data", data)
    samples = check(blob, tmp_path / "float.wav")
    finite = all(np.isfinite(values))
    assert (samples is not None) == finite
    if finite and rate == 16000:
        expected = np.clip(np.round(np.array(values, np.float32) * 32768.0), -32768, 32767)
        assert samples is not None and np.array_equal(samples, expected.astype(np.int16))


@pytest.mark.parametrize("rate", [0, 999, 768_001, 0xFFFFFFFF])
def test_rates_no_microphone_has_are_refused(tmp_path: Path, rate: int) -> None:
    """Finding: 4294967295 Hz read as an empty recording (every sample resampled away)."""
    blob = (
        b"RIFF" + struct.pack("<I", 44) + b"WAVE" + chunk(b"fmt ", fmt_body(1, 1, rate, 16)) + chunk(b"data", bytes(8))
    )
    path = tmp_path / "rate.wav"
    path.write_bytes(blob)
    with pytest.raises(AudioError, match="header is invalid"):
        read_wav(path)
