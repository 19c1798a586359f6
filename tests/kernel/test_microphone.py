"""The live microphone path (voxkey.audio.MicrophoneSource) on a real kernel's ALSA loopback card.

Guest side: ``tests/kernel/cases/audio.py``. At the same rate and sample format
``snd-aloop`` copies samples unchanged, so the recording must come back bit for
bit, framed by the pre-roll and post-roll silence; and whisper must hear in it
what it hears in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.kernel.cases.audio import RECORDING
from tests.speech_fixtures import load_utterance, manifest, tiny_engine, word_error_rate
from voxkey.asr import WhisperEngine
from voxkey.audio import SAMPLE_RATE, read_wav

__all__ = ["tiny_engine"]


@pytest.fixture
def microphone(guest_case_result: dict[str, Any]) -> dict[str, Any]:
    assert guest_case_result["rc"] == 0, guest_case_result["stderr"]
    assert guest_case_result["error"] is None, guest_case_result["error"]
    return guest_case_result


@pytest.mark.kernel
@pytest.mark.guest_case("audio.loopback_microphone")
def test_the_microphone_delivers_the_sound_bit_for_bit(microphone: dict[str, Any]) -> None:
    assert "Loopback" in microphone["capture"]
    assert microphone["device_rate"] == SAMPLE_RATE
    captured, _ = read_wav(Path(microphone["captured_wav"]))
    source = load_utterance(RECORDING)
    start = _find(captured, source[SAMPLE_RATE : SAMPLE_RATE + 1600])  # 100 ms from inside the speech
    assert start is not None, "the recording is not in what the microphone delivered"
    start -= SAMPLE_RATE
    assert start >= 0 and start + source.size <= captured.size, f"recording cut: starts at {start}, {captured.size=}"
    assert np.array_equal(captured[start : start + source.size], source), "samples changed on the way"


@pytest.mark.kernel
@pytest.mark.guest_case("audio.loopback_microphone")
def test_what_the_microphone_heard_transcribes_to_the_spoken_words(
    microphone: dict[str, Any], tiny_engine: WhisperEngine
) -> None:
    """Judged against the reference transcript, not against the file's own transcript.

    The capture is the recording framed by silence, and whisper's guess on a borderline word moves
    with the framing (CI saw "asked not" once where the bare file gives "ask not"), so an exact
    match with the file's transcript would fail on a correct microphone. Lost or shuffled blocks
    garble several words; one word of 22 is the tolerance.
    """
    captured, _ = read_wav(Path(microphone["captured_wav"]))
    heard = tiny_engine.transcribe(captured).text
    reference = next(u.text for u in manifest() if u.id == RECORDING)
    assert word_error_rate([reference], [heard]) <= 1 / 22 + 1e-9, heard


def _find(haystack: np.ndarray, needle: np.ndarray) -> int | None:
    """Index of ``needle`` in ``haystack`` (exact samples), or None."""
    candidates = np.flatnonzero(haystack[: haystack.size - needle.size + 1] == needle[0])
    for index in candidates:
        if np.array_equal(haystack[index : index + needle.size], needle):
            return int(index)
    return None
