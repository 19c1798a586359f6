"""Audio in: the microphone, or a WAV file standing in for it, as 16 kHz mono int16 blocks.

Both sources share one capture core (:class:`CaptureBuffer`) so they behave
identically towards the rest of voxkey:

* while idle, the last ``pre_roll_ms`` of sound is kept in a ring buffer, so
  the first syllable said just before the button went down is not lost;
* ``start_listening()`` (button press) opens a recording that begins with
  that pre-roll;
* ``stop_listening()`` (button release) keeps recording ``post_roll_ms`` more,
  because people release the button while still finishing the last word;
* ``frames()`` yields the recording's blocks as they arrive and ends when the
  recording is over. If the device vanishes mid-recording the iterator ends
  early with what was captured and ``source.error`` says why, so the words
  said so far are still transcribed.

Driving a source (e.g. from the daemon)::

    with MicrophoneSource(AudioSettings(device="USB")) as mic:
        mic.start_listening()            # button pressed (any thread)
        ...                              # capture thread: for block in mic.frames(): session.feed(block)
        mic.stop_listening()             # button released: post-roll, then frames() ends
        if mic.error: log it             # the audio before the failure was still delivered

``WavFileSource`` has the same interface; with ``auto_listen=True`` the whole
file is one recording (paced like a live microphone when ``realtime=True``,
or as fast as the consumer reads).
"""

from __future__ import annotations

import logging
import math
import queue
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from voxkey.errors import AudioError
from voxkey.speech_settings import AudioSettings as AudioSettings  # defined apart, light to import; re-exported

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
Samples = npt.NDArray[np.int16]


def samples_to_float(samples: Samples) -> npt.NDArray[np.float32]:
    """int16 PCM -> float32 in [-1, 1), what whisper.cpp takes."""
    return samples.astype(np.float32) / 32768.0


def float_to_samples(audio: npt.NDArray[np.floating[Any]]) -> Samples:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def to_mono_16k(audio: npt.NDArray[np.floating[Any]], rate: int) -> Samples:
    """Downmix (frames x channels) float audio and resample to 16 kHz int16 with soxr."""
    if audio.ndim == 2:
        audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if rate != SAMPLE_RATE and audio.size:
        audio = soxr.resample(audio.astype(np.float32), rate, SAMPLE_RATE, quality="HQ")
    return float_to_samples(audio)


# --- WAV files ---------------------------------------------------------------------------------

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True)
class WavInfo:
    """What a WAV file held before conversion, for messages and the ``transcribe --json`` output."""

    sample_rate: int
    channels: int
    bits: int
    truncated: bool


def _parse_fmt(body: bytes, path: Path) -> tuple[int, int, int, int]:
    if len(body) < 16:
        raise AudioError(f"{path}: WAV format header is cut short; the file is damaged")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
        (tag,) = struct.unpack("<H", body[24:26])
    return tag, channels, rate, bits


def _decode_pcm(data: bytes, tag: int, bits: int, channels: int, path: Path) -> npt.NDArray[np.float32]:
    width = bits // 8
    usable = len(data) - len(data) % (width * channels)
    data = data[:usable]
    if tag == _WAVE_FORMAT_PCM and bits == 16:
        audio = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    elif tag == _WAVE_FORMAT_PCM and bits == 8:
        audio = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _WAVE_FORMAT_PCM and bits == 24:
        raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        audio = value.astype(np.float32) / float(1 << 23)
    elif tag == _WAVE_FORMAT_PCM and bits == 32:
        audio = (np.frombuffer(data, "<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    elif tag == _WAVE_FORMAT_FLOAT and bits in (32, 64):
        raw = np.frombuffer(data, "<f4" if bits == 32 else "<f8")
        if not np.isfinite(raw).all():  # NaN and inf have no sample value: cast, they became noise or silence
            raise AudioError(f"{path}: the audio holds NaN or infinite samples; the file is damaged")
        audio = np.clip(raw, -1.0, 1.0).astype(np.float32)  # full scale is ±1; beyond it overflowed later
    else:
        raise AudioError(
            f"{path}: unsupported WAV encoding (format {tag}, {bits}-bit); "
            "convert it with `sox IN -r 16000 -c 1 -b 16 OUT.wav`"
        )
    return audio.reshape(-1, channels)


def read_wav(path: str | Path) -> tuple[Samples, WavInfo]:
    """Read any PCM/float WAV as 16 kHz mono int16; AudioError if it cannot be used.

    A file whose data chunk is shorter than its header claims (a recording cut
    off mid-write) is read up to where it stops: losing the end is better than
    losing everything.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError as exc:
        raise AudioError(f"{path}: no such file") from exc
    except OSError as exc:
        raise AudioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not blob:
        raise AudioError(f"{path}: the file is empty")
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioError(f"{path}: not a WAV file; convert it with `sox IN -r 16000 -c 1 -b 16 OUT.wav`")
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    truncated = False
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id, size = struct.unpack("<4sI", blob[pos : pos + 8])
        body_start = pos + 8
        if chunk_id == b"data":
            if size in (0, 0xFFFFFFFF) or body_start + size > len(blob):
                truncated = size not in (0, 0xFFFFFFFF)
                size = len(blob) - body_start
            data = blob[body_start : body_start + size]
        elif chunk_id == b"fmt ":
            fmt = _parse_fmt(blob[body_start : body_start + size], path)
        if data is not None and fmt is not None:
            break
        pos = body_start + size + (size & 1)
    if fmt is None:
        raise AudioError(f"{path}: WAV file has no format header; the file is damaged")
    if data is None:
        raise AudioError(f"{path}: WAV file has no audio data chunk; the file is damaged or truncated")
    tag, channels, rate, bits = fmt
    if channels < 1 or not 1000 <= rate <= 768_000 or bits not in (8, 16, 24, 32, 64):
        raise AudioError(f"{path}: WAV header is invalid ({channels} channels, {rate} Hz, {bits}-bit)")
    if truncated:
        log.warning("%s: audio data is shorter than the header says; using the %d bytes present", path, len(data))
    info = WavInfo(rate, channels, bits, truncated)
    if tag == _WAVE_FORMAT_PCM and bits == 16 and channels == 1 and rate == SAMPLE_RATE:
        usable = len(data) - len(data) % 2
        return np.frombuffer(data[:usable], "<i2").astype(np.int16), info  # already what we need: bit-exact
    audio = _decode_pcm(data, tag, bits, channels, path)
    return to_mono_16k(audio, rate), info


def write_wav(path: str | Path, samples: Samples, rate: int = SAMPLE_RATE) -> None:
    """16-bit mono WAV writer, for recordings the user wants to keep and for tests."""
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())


# --- the shared capture core ---------------------------------------------------------------------

_END = None

HELD_DELIVERY_MS = 90
"""While the button is held, the capture thread gets the audio in deliveries of at least this much.

Waking threads is what listening costs, not the VAD. On 50 s of room noise (``benchmarks/dictation.py``'s
daemon path) the capture thread used 0.21-0.26 CPU s with a wake-up per 30 ms block, ~140 us each, of which
webrtcvad and the phrase rules were ~9 us; each feed also woke the ASR worker (0.05-0.07 s). With 90 ms
deliveries: 0.08 s and 0.01 s. While the button is held nothing waits for the audio to the millisecond:
a guess starts only after ``HELD_GUESS_PAUSE`` of a pause, and a closed phrase is typed ~1 s after its end.
When the button comes up the held audio goes out at once and every post-roll block follows as it
arrives, since then the speaker's last words are what the user waits for."""


class CaptureBuffer:
    """Pre-roll ring while idle, a bounded recording queue while listening, post-roll after release.

    ``push`` is called from the audio thread (PortAudio callback or file
    player) and never blocks; everything else may be called from any thread.
    """

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings
        block = max(1, settings.block_ms * SAMPLE_RATE // 1000)
        # one block more than needed, so partial blocks never leave the pre-roll short
        self._pre_roll: deque[Samples] = deque(maxlen=math.ceil(settings.pre_roll_ms * SAMPLE_RATE / 1000 / block) + 1)
        self._pre_roll_samples = settings.pre_roll_ms * SAMPLE_RATE // 1000
        self._queue: queue.SimpleQueue[Samples | None] = queue.SimpleQueue()
        self._held: list[Samples] = []  # recorded while the button is held, not yet delivered (a few blocks)
        self._delivery = HELD_DELIVERY_MS * SAMPLE_RATE // 1000
        self._last_push_at = time.monotonic()
        self._lock = threading.Lock()
        self._listening = False
        self._post_roll_left: int | None = None  # set while in post-roll
        self._recorded = 0
        self.recorded_at_stop: int | None = None
        """Samples recorded when the button came up: what follows is post-roll."""
        self._max_samples = int(settings.max_recording_s * SAMPLE_RATE)
        self.error: AudioError | None = None
        self.truncated = False  # the recording hit max_recording_s

    @property
    def listening(self) -> bool:
        return self._listening

    def push(self, block: Samples) -> None:
        if block.size == 0:
            return
        with self._lock:
            self._last_push_at = time.monotonic()
            if not self._listening:
                self._pre_roll.append(block)
                return
            if self._post_roll_left is not None and block.size > self._post_roll_left:
                block = block[: self._post_roll_left]
            if block.size > self._max_samples - self._recorded:
                block = block[: self._max_samples - self._recorded]
            self._enqueue(block)
            if self._post_roll_left is not None:
                self._post_roll_left -= block.size
                if self._post_roll_left <= 0:
                    self._end()
            elif self._recorded >= self._max_samples:
                log.warning("recording reached max_recording_s=%s; stopping it", self.settings.max_recording_s)
                self.truncated = True
                self._end()

    def _enqueue(self, block: Samples) -> None:
        self._recorded += block.size
        self._held.append(block)
        if self.recorded_at_stop is not None or sum(held.size for held in self._held) >= self._delivery:
            self._deliver()

    def _deliver(self) -> None:
        """Hand what is held to the capture thread (one put: one wake-up)."""
        if self._held:
            self._queue.put(self._held[0] if len(self._held) == 1 else np.concatenate(self._held))
            self._held = []

    def _end(self) -> None:
        self._listening = False
        self._post_roll_left = None
        self._deliver()
        self._queue.put(_END)

    def start(self) -> None:
        with self._lock:
            if self._listening:
                return
            self._queue = queue.SimpleQueue()
            self._held = []
            self._last_push_at = time.monotonic()
            self.error = None
            self.truncated = False
            self._recorded = 0
            self.recorded_at_stop = None
            self._listening = True
            self._post_roll_left = None
            pre = np.concatenate(list(self._pre_roll)) if self._pre_roll else np.zeros(0, np.int16)
            self._pre_roll.clear()
            pre = pre[pre.size - min(pre.size, self._pre_roll_samples) :]
            if pre.size:
                self._enqueue(pre)

    def stop(self, post_roll: bool = True) -> None:
        """Button up: the post-roll starts; without ``post_roll`` the recording ends now (also mid-post-roll)."""
        with self._lock:
            if not self._listening or (post_roll and self._post_roll_left is not None):
                return
            if self.recorded_at_stop is None:
                self.recorded_at_stop = self._recorded
                self._deliver()
            post = self.settings.post_roll_ms * SAMPLE_RATE // 1000 if post_roll else 0
            if post <= 0:
                self._end()
            else:
                self._post_roll_left = post

    def _stall_left(self) -> float:
        """How much longer the microphone may stay silent: the stall clock runs from its last block, which
        may still be held, not from the last delivery. Held audio goes out now, so none of it waits."""
        with self._lock:
            self._deliver()
            return self._last_push_at + self.settings.stall_timeout_s - time.monotonic()

    def fail(self, error: AudioError) -> None:
        """The device is gone: end the recording here, keeping what was captured."""
        with self._lock:
            self.error = error
            if self._listening:
                self._end()

    def frames(self) -> Iterator[Samples]:
        q = self._queue
        timeout = self.settings.stall_timeout_s
        while True:
            try:
                block = q.get(timeout=timeout)
            except queue.Empty:
                if not self._listening:
                    return
                timeout = self._stall_left()
                if timeout > 0:
                    continue
                timeout = self.settings.stall_timeout_s
                # the end marker that fail() queues still lets blocks that raced in come out first
                self.fail(AudioError("the microphone stopped delivering audio (unplugged?); check the audio device"))
                continue
            timeout = self.settings.stall_timeout_s
            if block is _END:
                return
            yield block


class AudioSource:
    """Common interface of the microphone and the WAV file source."""

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings
        self.buffer = CaptureBuffer(settings)

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> AudioSource:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start_listening(self) -> None:
        """Button down: start a recording that begins with the pre-roll."""
        self.buffer.start()

    def stop_listening(self, post_roll: bool = True) -> None:
        """Button up: keep recording for the post-roll, then end ``frames()``."""
        self.buffer.stop(post_roll)

    def frames(self) -> Iterator[Samples]:
        """Blocks of the current recording, until it ends (blocks while waiting for audio)."""
        return self.buffer.frames()

    @property
    def listening(self) -> bool:
        return self.buffer.listening

    @property
    def error(self) -> AudioError | None:
        return self.buffer.error


class WavFileSource(AudioSource):
    """A WAV file played into the capture core as if a microphone heard it.

    ``realtime=True`` paces blocks at the speed of sound capture (for latency
    measurements and end-to-end tests); ``realtime=False`` delivers them as
    fast as possible. With ``auto_listen`` the recording starts at the first
    sample and stops at the end of the file (no post-roll: there is no more
    sound), which is what tests and ``voxkey transcribe`` want; without it the
    file is the "room" and the caller presses and releases the button.
    """

    def __init__(
        self,
        path: str | Path,
        settings: AudioSettings | None = None,
        realtime: bool = False,
        auto_listen: bool = True,
    ) -> None:
        settings = settings or AudioSettings()
        if not auto_listen and not realtime:
            raise ValueError("a WAV source without auto_listen must be realtime, or the button would miss it")
        super().__init__(settings)
        self.path = Path(path)
        self.samples, self.info = read_wav(self.path)
        self.realtime = realtime
        self.auto_listen = auto_listen
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.finished = threading.Event()  # the whole file has been played

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE

    def open(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.finished.clear()
        if self.auto_listen:
            self.buffer.start()
        self._thread = threading.Thread(target=self._play, name="voxkey-wav-source", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        block = max(1, self.settings.block_ms * SAMPLE_RATE // 1000)
        started = time.monotonic()
        for offset in range(0, self.samples.size, block):
            if self._stop.is_set():
                break
            if self.realtime:
                due = started + (offset + block) / SAMPLE_RATE
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            self.buffer.push(self.samples[offset : offset + block])
        if self.auto_listen:
            self.buffer.stop(post_roll=False)
        self.finished.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.buffer.stop(post_roll=False)


def _find_input_device(device: str | int | None) -> int | None:
    import sounddevice as sd

    try:
        devices = sd.query_devices()
    except sd.PortAudioError as exc:  # pragma: no cover - depends on the host's audio stack
        raise AudioError(f"cannot list audio devices: {exc}") from exc
    inputs = [i for i, d in enumerate(devices) if d["max_input_channels"] > 0]
    if not inputs:
        raise AudioError("no microphone found; plug in a USB microphone or check `arecord -l`")
    if device is None or device == "":
        return None
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        index = int(device)
        if index not in inputs:
            raise AudioError(f"audio input device {index} does not exist; see `python -m sounddevice` for the list")
        return index
    matches = [i for i in inputs if device.lower() in str(devices[i]["name"]).lower()]
    if not matches:
        names = ", ".join(str(devices[i]["name"]) for i in inputs)
        raise AudioError(f"no audio input device matches {device!r}; available: {names}")
    return matches[0]


class MicrophoneSource(AudioSource):
    """Live capture with sounddevice; opened once, kept running so the pre-roll is always warm.

    Devices that cannot capture at 16 kHz are opened at their native rate and
    resampled with a streaming soxr resampler inside the callback.
    """

    def __init__(self, settings: AudioSettings | None = None) -> None:
        super().__init__(settings or AudioSettings())
        self._stream: Any = None
        self._resampler: Any = None
        self._closing = False
        self.device_rate = SAMPLE_RATE
        self.device_index: int | None = None

    def open(self) -> None:
        import sounddevice as sd

        if self._stream is not None:
            return
        self.device_index = _find_input_device(self.settings.device)
        try:
            sd.check_input_settings(device=self.device_index, channels=1, dtype="int16", samplerate=SAMPLE_RATE)
            rate = SAMPLE_RATE
        except sd.PortAudioError:
            info = sd.query_devices(self.device_index, "input")
            rate = int(info["default_samplerate"])
            self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self.device_rate = rate
        self._closing = False
        try:
            self._stream = sd.InputStream(
                device=self.device_index,
                channels=1,
                samplerate=rate,
                dtype="int16",
                blocksize=max(1, self.settings.block_ms * rate // 1000),
                # A deep device buffer: whisper keeps every core busy while a phrase decodes, and a
                # late callback must find its audio waiting, not overwritten. Dictation needs no
                # low capture latency (found on snd-aloop in the emulated guest: "low" lost blocks).
                latency="high",
                callback=self._callback,
                finished_callback=self._finished,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stream = None
            text = str(exc)
            if "busy" in text.lower() or "unavailable" in text.lower() or "-9985" in text:
                raise AudioError(f"the microphone is busy (used by another program): {text}") from exc
            raise AudioError(f"cannot open the microphone: {text}") from exc

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            log.debug("audio input overflow")
        block = np.asarray(indata[:, 0], dtype=np.int16).copy()
        if self._resampler is not None:
            converted = self._resampler.resample_chunk(samples_to_float(block))
            block = float_to_samples(converted)
        self.buffer.push(block)

    def _finished(self) -> None:
        if not self._closing:
            self.buffer.fail(AudioError("the microphone stopped (unplugged?); check the audio device"))

    def close(self) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception as exc:  # a vanished device may fail to close; nothing left to release
                log.debug("closing the input stream failed: %s", exc)
        self.buffer.stop(post_roll=False)


def open_audio_source(settings: AudioSettings, wav_file: Path | None = None) -> AudioSource:
    """The microphone; or, for ``voxkey run --audio-file``, that WAV file played as one press–speak–release."""
    if wav_file is not None:
        return WavFileSource(wav_file, settings, realtime=False, auto_listen=True)
    return MicrophoneSource(settings)
