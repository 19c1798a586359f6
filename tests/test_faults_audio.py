"""Audio faults (issue #14): the microphone vanishes mid-recording and comes back; a capture stalls.

The microphone is simulated at its boundary, the capture core: a WAV source that plays the room in real
time and, part way into the first recording, either reports the device gone (what ``MicrophoneSource``
does when PortAudio ends the stream of an unplugged device) or simply stops delivering audio (a hung
driver or a USB microphone that stopped streaming; the core's ``stall_timeout_s`` must notice). The
daemon must then:

- end the recording at once and say so (error light, ``counters.errors``), button still held or not;
- type the words said before the fault, exactly once, and nothing more for the rest of that press;
- take the next press normally once the microphone is back, with nothing typed twice.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from tests.daemon_harness import SPEECH_S, Harness, TimedWavSource, make_config, room_fixture, whisper_fixture
from voxkey.asr import WhisperEngine
from voxkey.audio import SAMPLE_RATE, AudioSettings, WavFileSource, read_wav
from voxkey.config import Config
from voxkey.dictation import transcribe_file, transcribe_samples
from voxkey.errors import AudioError
from voxkey.ui import LightState

CUT_S = 2.2  # "In the valley of the shadow of death | he is with us": the fault comes mid-sentence


engine = whisper_fixture()
room = room_fixture()


class FailingSource(TimedWavSource):
    """The room, until ``cut_s`` of it has been heard; then the device is gone or hangs.

    ``unplug``: the capture core is told the device ended, as PortAudio's finished callback does.
    ``stall``: no more audio and no word about it, until the daemon closes the source.
    """

    def __init__(self, path: Path, settings: AudioSettings, fault: str, cut_s: float) -> None:
        super().__init__(path, settings, realtime=True, auto_listen=False)
        self.fault, self.cut_s = fault, cut_s
        self.faulted = threading.Event()

    def _play(self) -> None:
        block = self.settings.block_ms * SAMPLE_RATE // 1000
        cut = int(self.cut_s * SAMPLE_RATE)
        started = time.monotonic()
        for offset in range(0, cut, block):
            if self._stop.wait(max(0.0, started + (offset + block) / SAMPLE_RATE - time.monotonic())):
                break
            self.buffer.push(self.samples[offset : min(offset + block, cut)])
        self.faulted.set()
        if self.fault == "unplug":
            self.buffer.fail(AudioError("the microphone stopped (unplugged?); check the audio device"))
        self._stop.wait()  # a stalled driver: nothing until the stream is closed
        self.finished.set()


class FaultyMicrophoneHarness(Harness):
    """The first recording's microphone fails; every later one is the healthy room (plugged in again)."""

    def __init__(self, fault: str, config: Config, engine: WhisperEngine, pins: MockFactory, room: Path) -> None:
        self.fault = fault
        self.failing: FailingSource | None = None
        self.armed = False  # the daemon's start-up check opens the microphone too: that one works
        super().__init__(config, engine, pins, room)
        self.armed = True

    def open_microphone(self) -> WavFileSource:
        if self.failing is None and self.armed:
            self.failing = FailingSource(self.microphone, self.daemon.config.audio, self.fault, CUT_S)
            self.sources.append(self.failing)
            return self.failing
        return super().open_microphone()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.mark.parametrize("fault", ["unplug", "stall"])
def test_microphone_lost_mid_recording_types_what_was_said_once_and_recovers(
    fault: str, engine: WhisperEngine, pins: MockFactory, room: Path
) -> None:
    config = make_config("hold")
    config = dataclasses.replace(config, audio=dataclasses.replace(config.audio, stall_timeout_s=0.5))
    full = transcribe_file(engine, room, config.vad, config.audio).text
    heard = transcribe_samples(engine, read_wav(room)[0][: int(CUT_S * SAMPLE_RATE)], config.vad, config.audio).text
    h = FaultyMicrophoneHarness(fault, config, engine, pins, room)
    try:
        h.press()
        h.wait_for(lambda: h.failing is not None, 5)
        assert h.failing is not None
        assert h.failing.faulted.wait(10)
        faulted_at = time.monotonic()
        h.wait_for(lambda: h.daemon.counters.errors == 1, 10)  # noticed while the button is still down
        noticed_s = time.monotonic() - faulted_at
        h.wait_for(lambda: h.daemon.counters.typed == 1, 120)
        h.wait_for(lambda: h.light_state() is LightState.ERROR, 5)
        time.sleep(1.0)  # the user is still holding the button, still talking: nothing more is typed
        h.release()
        first = h.link.typed()
        # exactly what was heard up to the fault, as `voxkey transcribe` would give it, and nothing else
        assert first == heard, (first, heard, full)
        assert len(words(first)) < len(words(full))
        assert h.daemon.counters.cancelled == 0 and h.daemon.counters.undone == 0

        time.sleep(config.button.double_press_s + 0.2)  # the microphone is back; the next press is normal
        h.speak(SPEECH_S)
        h.wait_for(lambda: h.daemon.counters.typed == 2, 120)
        h.wait_idle()
        assert h.link.typed() == first + " " + full
        assert h.daemon.counters.errors == 1
        print(f"{fault}: noticed {noticed_s:.2f} s after the fault; typed {first!r} then {full!r}")
        if fault == "stall":
            assert noticed_s >= config.audio.stall_timeout_s * 0.9
    finally:
        h.stop()


def test_failing_source_really_stops_the_audio(room: Path) -> None:
    """The fixture itself: after the cut no sample arrives (else the test above would prove nothing)."""
    source = FailingSource(room, AudioSettings(stall_timeout_s=0.3), "stall", 0.3)
    source.open()
    source.start_listening()
    got = sum(block.size for block in source.frames())
    source.close()
    assert got <= int(0.3 * SAMPLE_RATE) and isinstance(source.error, AudioError)
    assert np.all(source.samples.size > got)
