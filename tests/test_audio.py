from __future__ import annotations

import contextlib
import queue
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.speech_fixtures import SPEECH_DIR, require_tools, save, white_noise
from voxkey.audio import (
    HELD_DELIVERY_MS,
    SAMPLE_RATE,
    AudioSettings,
    CaptureBuffer,
    MicrophoneSource,
    WavFileSource,
    float_to_samples,
    read_wav,
)
from voxkey.errors import AudioError

JFK = SPEECH_DIR / "jfk.wav"


def tone(seconds: float, freq: float, rate: int = SAMPLE_RATE, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return level * np.sin(2 * np.pi * freq * t)


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / samples.size)


def sox(*args: str) -> None:
    require_tools("sox")
    subprocess.run(["sox", *args], check=True, capture_output=True)


# --- reading files -----------------------------------------------------------------------------------


def test_reads_the_shared_16k_recordings_unchanged() -> None:
    samples, info = read_wav(JFK)
    assert samples.dtype == np.int16 and samples.size == 176_000
    assert (info.sample_rate, info.channels, info.bits, info.truncated) == (16_000, 1, 16, False)


def test_stereo_is_downmixed(tmp_path: Path) -> None:
    left = float_to_samples(tone(1.0, 440))
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    path = tmp_path / "stereo.wav"
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(stereo.astype("<i2").tobytes())
    samples, info = read_wav(path)
    assert info.channels == 2 and samples.size == SAMPLE_RATE
    assert abs(np.abs(samples).max() - 0.25 * 32768) < 200  # mean of a 0.5 tone and silence


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_other_rates_are_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"{rate}.wav"
    sox("-n", "-r", str(rate), "-c", "1", "-b", "16", str(path), "synth", "2", "sine", "1000")
    samples, info = read_wav(path)
    assert info.sample_rate == rate
    assert abs(samples.size - 2 * SAMPLE_RATE) <= 2
    assert abs(dominant_hz(samples) - 1000) < 5


@pytest.mark.parametrize(
    "encoding", [["-b", "8", "-e", "unsigned"], ["-b", "24"], ["-b", "32"], ["-e", "floating-point", "-b", "32"]]
)
def test_other_sample_formats(tmp_path: Path, encoding: list[str]) -> None:
    path = tmp_path / "fmt.wav"
    sox("-n", "-r", "16000", "-c", "2", *encoding, str(path), "synth", "1", "sine", "500", "gain", "-6")
    samples, _ = read_wav(path)
    assert samples.size == SAMPLE_RATE
    assert abs(dominant_hz(samples) - 500) < 3
    assert 0.4 * 32767 < np.abs(samples).max() < 0.6 * 32767


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        read_wav(path)


def test_not_a_wav_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("shopping list: milk, eggs\n" * 20)
    with pytest.raises(AudioError, match=r"not a WAV file; convert it with `sox"):
        read_wav(path)
    with pytest.raises(AudioError, match="not a WAV file"):
        read_wav(JFK.with_name("manifest.tsv"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        read_wav(tmp_path / "nope.wav")


def test_header_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(JFK.read_bytes()[:30])
    with pytest.raises(AudioError, match="damaged"):
        read_wav(path)


def test_truncated_data_keeps_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(JFK.read_bytes()[: 44 + 2 * 16_000 + 1])  # one second and an odd byte
    samples, info = read_wav(path)
    assert info.truncated and samples.size == 16_000
    full, _ = read_wav(JFK)
    assert np.array_equal(samples, full[:16_000])


def test_wav_without_frames_is_empty_audio(tmp_path: Path) -> None:
    path = save(np.zeros(0, np.int16), tmp_path, "none")
    samples, _ = read_wav(path)
    assert samples.size == 0


def test_unsupported_encoding_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "alaw.wav"
    sox("-n", "-r", "8000", "-c", "1", "-e", "a-law", str(path), "synth", "0.5", "sine", "440")
    with pytest.raises(AudioError, match=r"unsupported WAV encoding.*sox"):
        read_wav(path)


def test_random_bytes_never_crash(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    header = JFK.read_bytes()[:44]
    for i in range(30):
        blob = bytearray(header + rng.integers(0, 256, 400, dtype=np.uint8).tobytes())
        for _ in range(4):
            blob[int(rng.integers(0, 44))] = int(rng.integers(0, 256))
        path = tmp_path / f"r{i}.wav"
        path.write_bytes(bytes(blob))
        with contextlib.suppress(AudioError):
            read_wav(path)


# --- the capture core ----------------------------------------------------------------------------------


def blocks(samples: np.ndarray, size: int = 480) -> list[np.ndarray]:
    return [samples[i : i + size] for i in range(0, samples.size, size)]


def ramp(n: int, start: int = 0) -> np.ndarray:
    """Distinct, ordered sample values, so we can see exactly which samples made it."""
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def collect(buffer: CaptureBuffer) -> np.ndarray:
    return np.concatenate(list(buffer.frames()))


def test_pre_roll_and_post_roll() -> None:
    settings = AudioSettings(pre_roll_ms=300, post_roll_ms=300)
    buffer = CaptureBuffer(settings)
    idle = ramp(16_000)
    for block in blocks(idle):
        buffer.push(block)
    buffer.start()
    speech = ramp(8_000, start=16_000)
    for block in blocks(speech):
        buffer.push(block)
    buffer.stop()
    after = ramp(16_000, start=24_000)
    for block in blocks(after):
        buffer.push(block)
    recorded = collect(buffer)
    assert recorded.size == 4_800 + 8_000 + 4_800
    assert recorded[0] == idle[-4_800]  # exactly the last 300 ms before the press
    assert np.array_equal(recorded[4_800:12_800], speech)
    assert recorded[-1] == after[4_799]  # exactly 300 ms after the release
    assert not buffer.listening


def test_while_the_button_is_held_the_capture_thread_gets_fewer_larger_deliveries() -> None:
    delivery = HELD_DELIVERY_MS * SAMPLE_RATE // 1000
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0))
    buffer.start()
    speech = ramp(480 * 7)
    for block in blocks(speech):
        buffer.push(block)
    buffer.stop(post_roll=False)
    delivered = list(buffer.frames())
    assert [block.size for block in delivered] == [delivery, delivery, speech.size - 2 * delivery]
    assert np.array_equal(np.concatenate(delivered), speech)


def test_at_release_the_held_audio_and_then_each_post_roll_block_go_out_at_once() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0, post_roll_ms=300, stall_timeout_s=30))
    buffer.start()
    buffer.push(ramp(480))  # less than a delivery: held while the button is down
    received: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
    reader = threading.Thread(target=lambda: [received.put(block) for block in buffer.frames()], daemon=True)
    reader.start()
    buffer.stop(post_roll=True)
    assert np.array_equal(received.get(timeout=2), ramp(480))
    buffer.push(ramp(480, start=480))
    assert np.array_equal(received.get(timeout=2), ramp(480, start=480))
    buffer.stop(post_roll=False)
    reader.join(2)
    assert not reader.is_alive()


def test_a_microphone_that_stalls_gives_its_held_audio_then_the_error() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0, stall_timeout_s=0.1))
    buffer.start()
    buffer.push(ramp(480))
    assert np.array_equal(collect(buffer), ramp(480))
    assert buffer.error is not None and "stopped delivering" in str(buffer.error)


def test_the_stall_clock_runs_from_the_microphones_last_block_not_from_the_last_delivery() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0, stall_timeout_s=0.3))
    buffer.start()
    started = time.monotonic()
    buffer.push(ramp(480))
    threading.Timer(0.2, buffer.push, (ramp(480, start=480),)).start()  # held too: still under a delivery
    assert np.array_equal(collect(buffer), ramp(960))
    assert time.monotonic() - started >= 0.2 + 0.3 * 0.95
    assert buffer.error is not None


def test_stop_without_post_roll_ends_at_once() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0))
    buffer.start()
    buffer.push(ramp(480))
    buffer.stop(post_roll=False)
    buffer.push(ramp(480))
    assert collect(buffer).size == 480


def test_recording_is_bounded() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0, max_recording_s=1.0))
    buffer.start()
    for block in blocks(ramp(3 * SAMPLE_RATE)):
        buffer.push(block)
    assert collect(buffer).size == SAMPLE_RATE
    assert buffer.truncated


def test_device_failure_keeps_the_audio_so_far() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0))
    buffer.start()
    buffer.push(ramp(4_800))
    buffer.fail(AudioError("microphone unplugged"))
    assert collect(buffer).size == 4_800
    assert buffer.error is not None and "unplugged" in str(buffer.error)


def test_silent_device_is_detected_as_gone() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0, stall_timeout_s=0.2))
    buffer.start()
    buffer.push(ramp(480))
    assert collect(buffer).size == 480  # returns instead of waiting forever
    assert buffer.error is not None and "stopped delivering audio" in str(buffer.error)


def test_a_new_recording_starts_clean() -> None:
    buffer = CaptureBuffer(AudioSettings(pre_roll_ms=0, post_roll_ms=0))
    buffer.start()
    buffer.push(ramp(480))
    buffer.fail(AudioError("gone"))
    collect(buffer)
    buffer.start()
    assert buffer.error is None
    buffer.push(ramp(960))
    buffer.stop()
    assert collect(buffer).size == 960


# --- sources -------------------------------------------------------------------------------------------


def test_wav_source_fast_delivers_the_whole_file() -> None:
    with WavFileSource(JFK, realtime=False) as source:
        recorded = np.concatenate(list(source.frames()))
    full, _ = read_wav(JFK)
    assert np.array_equal(recorded, full)


def test_wav_source_realtime_is_paced_like_a_microphone(tmp_path: Path) -> None:
    path = save(white_noise(1.0), tmp_path, "one_second")
    with WavFileSource(path, realtime=True) as source:
        started = time.monotonic()
        count = sum(block.size for block in source.frames())
        elapsed = time.monotonic() - started
    assert count == SAMPLE_RATE
    assert elapsed >= 0.95  # it can never deliver a second of sound before a second has passed


def test_wav_source_with_a_button(tmp_path: Path) -> None:
    """The file is the room; pressing and releasing cuts a recording out of it, with pre- and post-roll."""
    room = np.concatenate([ramp(16_000), ramp(16_000, 16_000)])
    path = save(room, tmp_path, "room")
    settings = AudioSettings(pre_roll_ms=100, post_roll_ms=100)
    source = WavFileSource(path, settings, realtime=True, auto_listen=False)
    received: list[np.ndarray] = []
    with source:
        time.sleep(0.5)
        source.start_listening()
        reader = threading.Thread(target=lambda: received.extend(source.frames()))
        reader.start()
        time.sleep(0.5)
        source.stop_listening()
        reader.join(timeout=5)
    recorded = np.concatenate(received)
    duration = recorded.size / SAMPLE_RATE
    assert 0.6 <= duration <= 1.1  # 0.5 s held + 0.1 s pre-roll + 0.1 s post-roll, scheduling slack
    assert np.all(np.diff(recorded.astype(np.int32)) == 1)  # contiguous: nothing lost, nothing repeated


def test_wav_source_rejects_a_fast_room() -> None:
    with pytest.raises(ValueError):
        WavFileSource(JFK, realtime=False, auto_listen=False)


def test_microphone_errors_are_clear() -> None:
    import sounddevice as sd

    inputs = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    if inputs:  # a machine with a microphone: ask for one that does not exist
        with pytest.raises(AudioError, match="no audio input device matches"):
            MicrophoneSource(AudioSettings(device="no-such-microphone-xyz")).open()
    else:  # CI and this build machine have no sound card at all
        with pytest.raises(AudioError, match="no microphone found"):
            MicrophoneSource(AudioSettings()).open()


def test_riff_chunks_before_fmt_are_skipped(tmp_path: Path) -> None:
    pcm = float_to_samples(tone(0.5, 300)).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + b"LIST" + struct.pack("<I", 5) + b"hello\x00" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    path = tmp_path / "list.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    samples, _ = read_wav(path)
    assert samples.size == 8_000 and abs(dominant_hz(samples) - 300) < 3
