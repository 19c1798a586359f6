from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tests.speech_fixtures import concat, espeak, fan_hum, load_utterance, silence, speech_tmp, white_noise
from voxkey.audio import SAMPLE_RATE
from voxkey.errors import ConfigError
from voxkey.vad import PhraseSegmenter, VadSettings, loudness_spread_db, speech_ms, split_phrases

__all__ = ["speech_tmp"]


@pytest.fixture(scope="module")
def sentences(speech_tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    return (
        espeak("The quick brown fox jumps over the lazy dog.", speech_tmp, "fox"),
        espeak("Please send the report to my office before noon.", speech_tmp, "report"),
    )


@pytest.mark.parametrize(
    "noise",
    [silence(10), white_noise(10, 0.02), white_noise(10, 0.3), fan_hum(10)],
    ids=["digital-silence", "quiet-white-noise", "loud-white-noise", "fan-hum"],
)
def test_no_phrase_in_silence_or_steady_noise(noise: np.ndarray) -> None:
    assert split_phrases(noise) == []


def test_steady_noise_is_flat_and_speech_is_not() -> None:
    assert loudness_spread_db(white_noise(5)) < 2
    assert loudness_spread_db(fan_hum(5)) < 3
    assert loudness_spread_db(load_utterance("jfk")) > 20


def test_long_pause_splits_and_is_removed(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    fox, report = sentences
    recording = concat(silence(2), fox, silence(15), report, silence(3))
    phrases = split_phrases(recording)
    assert len(phrases) == 2
    settings = VadSettings()
    for phrase, sentence in zip(phrases, (fox, report), strict=True):
        # only speech plus at most the padding on each side reaches whisper
        assert phrase.duration_s <= sentence.size / SAMPLE_RATE + 2 * settings.padding_ms / 1000 + 0.1
        assert phrase.speech_ms > 1000
    assert abs(phrases[1].start_s - (2 + fox.size / SAMPLE_RATE + 15)) < 1.0


def trimmed(sentence: np.ndarray) -> np.ndarray:
    """The sentence without espeak's own leading and trailing silence, so a test sets the pauses exactly."""
    loud = np.nonzero(np.abs(sentence.astype(np.int32)) > 300)[0]
    return sentence[loud[0] : loud[-1] + 1]


def test_short_pause_stays_inside_a_short_phrase(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    fox, report = (trimmed(s) for s in sentences)
    phrases = split_phrases(concat(silence(0.5), fox, silence(0.4), report, silence(1)))
    assert len(phrases) == 1


def test_phrase_pause_always_ends_a_phrase(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    fox, report = (trimmed(s) for s in sentences)
    phrases = split_phrases(concat(silence(0.5), fox, silence(0.75), report, silence(1)))
    assert len(phrases) == 2


def test_short_pause_ends_a_long_phrase(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    """Once a phrase holds long_phrase_s, a short pause ends it, so the phrase open at release stays short."""
    fox, report = (trimmed(s) for s in sentences)
    long_speech = concat(fox, silence(0.1), report, silence(0.1), fox)
    assert long_speech.size / SAMPLE_RATE > VadSettings().long_phrase_s
    phrases = split_phrases(concat(silence(0.5), long_speech, silence(0.4), report, silence(1)))
    assert len(phrases) == 2
    assert phrases[0].duration_s > VadSettings().long_phrase_s


def test_phrases_know_how_they_ended_and_the_pause_before_them(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    """What decides whether a sentence may go on across a cut: a short pause, or one that ends any phrase."""
    fox, report = (trimmed(s) for s in sentences)
    long_speech = concat(fox, silence(0.1), report, silence(0.1), fox)
    phrases = split_phrases(concat(silence(0.5), long_speech, silence(0.4), report, silence(0.9), fox, silence(1)))
    assert len(phrases) == 3
    first, second, third = phrases
    assert first.pause_before_ms is None
    assert first.cut_short and not second.cut_short and not third.cut_short
    assert second.pause_before_ms is not None
    assert VadSettings().short_pause_ms <= second.pause_before_ms < VadSettings().phrase_pause_ms  # 0.4 s of silence
    assert third.pause_before_ms is not None and third.pause_before_ms >= VadSettings().phrase_pause_ms


def test_no_sound_goes_to_two_phrases(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    fox, report = (trimmed(s) for s in sentences)
    speech = concat(fox, silence(0.35), report, silence(0.1), fox, silence(0.65), report, silence(0.3), fox)
    phrases = split_phrases(concat(silence(0.5), speech, silence(1)))
    assert len(phrases) >= 2
    for before, after in itertools.pairwise(phrases):
        assert before.start_s + before.duration_s <= after.start_s + 1e-9


def test_candidate_is_exactly_the_phrase_that_closes(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    """Speculation is only safe if the audio handed out early is the audio the phrase ends up with."""
    fox, report = (trimmed(s) for s in sentences)
    half = fox.size // 2
    recording = concat(silence(0.5), fox[:half], silence(0.4), fox[half:], silence(0.8), report, silence(1))
    segmenter = PhraseSegmenter()
    candidates: list[np.ndarray] = []
    closed = []
    for offset in range(0, recording.size, 480):
        closed += segmenter.feed(recording[offset : offset + 480])
        candidate = segmenter.candidate()
        if candidate is not None:
            candidates.append(candidate.samples)
    closed += segmenter.flush()
    assert len(closed) == 2
    for phrase in closed:
        assert any(np.array_equal(phrase.samples, c) for c in candidates)
    # the 0.4 s pause inside the first phrase gave a guess that was thrown away: speech went on
    assert any(c.size < closed[0].samples.size for c in candidates)


def test_the_tail_past_what_was_heard_is_digital_silence_so_the_phrase_is_complete_early(
    sentences: tuple[np.ndarray, np.ndarray],
) -> None:
    """A released button's last phrase can be decoded ``tail_heard_ms`` after the last word, not ``tail_ms``:
    the rest of its tail is zeros whatever the room does, so the guess is exactly the phrase that closes."""
    fox, _ = (trimmed(s) for s in sentences)
    settings = VadSettings()
    room = white_noise(1.0, 0.003)  # a quiet room (webrtcvad calls a louder hiss right after speech voiced)
    segmenter = PhraseSegmenter(settings)
    closed = segmenter.feed(concat(white_noise(0.5, 0.003), fox))
    first, silence_at_first = None, 0
    for offset in range(0, room.size, 480):
        closed += segmenter.feed(room[offset : offset + 480])
        if first is None and (first := segmenter.candidate()) is not None:
            silence_at_first = segmenter.silence_ms
    (phrase,) = closed
    assert first is not None and silence_at_first == settings.tail_heard_ms
    assert np.array_equal(phrase.samples, first.samples)
    unheard = (settings.tail_ms - settings.tail_heard_ms) * SAMPLE_RATE // 1000
    assert not phrase.samples[-unheard:].any()  # digital silence, not the room
    assert phrase.samples[-unheard - 480 : -unheard].any()  # what was heard is the room


def test_a_hiss_to_the_end_of_the_recording_is_not_made_a_phrase_by_its_silent_tail() -> None:
    """The tail's digital silence is not sound: counted as quiet frames it would make steady noise look like
    speech rising and falling (``min_dynamic_db``)."""
    assert split_phrases(white_noise(1.0, 0.3)) == []


def test_settled_follows_the_speaker(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    fox, _ = (trimmed(s) for s in sentences)
    segmenter = PhraseSegmenter()
    segmenter.feed(concat(silence(0.3), fox[: fox.size // 2]))
    assert not segmenter.settled  # mid-sentence
    segmenter.feed(concat(fox[fox.size // 2 :], silence(VadSettings().tail_ms / 1000 + 0.15)))  # VAD lags ~90 ms
    assert segmenter.settled


def test_phrases_keep_padding_so_words_are_not_clipped(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    fox, _ = sentences
    (phrase,) = split_phrases(concat(silence(1), fox, silence(1)))
    settings = VadSettings()
    start = round(1 * SAMPLE_RATE)
    assert phrase.start_s <= 1.0 - settings.padding_ms / 1000 / 2  # starts before the first voiced frame
    assert phrase.samples.size >= fox.size - start // 10


def test_overlong_speech_is_split_before_whispers_window() -> None:
    speech = concat(*(load_utterance(i) for i in ("LJ001-0014", "LJ001-0015", "LJ001-0017", "LJ001-0019")))
    settings = VadSettings(phrase_pause_ms=2000, max_phrase_s=10.0)
    phrases = split_phrases(speech, settings)
    assert len(phrases) >= 3
    assert all(p.duration_s <= settings.max_phrase_s + 0.05 for p in phrases)
    total = sum(p.samples.size for p in phrases)
    assert total >= 0.9 * speech.size  # split, not thrown away


@pytest.mark.parametrize("chunk", [1, 160, 333, 480, 4096])
def test_chunking_does_not_change_the_phrases(sentences: tuple[np.ndarray, np.ndarray], chunk: int) -> None:
    fox, report = sentences
    recording = concat(silence(1), fox, silence(2), report, silence(0.5))
    expected = split_phrases(recording)
    segmenter = PhraseSegmenter()
    got = []
    step = chunk if chunk > 1 else 7
    for i in range(0, recording.size, step):
        got.extend(segmenter.feed(recording[i : i + step]))
    got.extend(segmenter.flush())
    assert [p.samples.size for p in got] == [p.samples.size for p in expected]
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(got, expected, strict=True))
    assert segmenter.total_samples == recording.size


def test_a_click_is_not_a_phrase() -> None:
    click = concat(silence(1), white_noise(0.06, 0.5), silence(1))
    assert split_phrases(click) == []


def test_speech_ms_counts_voiced_audio(sentences: tuple[np.ndarray, np.ndarray]) -> None:
    fox, _ = sentences
    assert speech_ms(silence(3)) == 0
    assert 1500 <= speech_ms(concat(silence(1), fox)) <= fox.size * 1000 // SAMPLE_RATE + 30


@pytest.mark.parametrize(
    "bad",
    [
        {"aggressiveness": 4},
        {"frame_ms": 25},
        {"start_ratio": 0},
        {"max_phrase_s": 30},
        {"tail_ms": 900},
        {"tail_heard_ms": 210},
        {"tail_heard_ms": 0},
    ],
)
def test_bad_settings_are_config_errors(bad: dict[str, object]) -> None:
    """Frozen and checked when made: no segmenter can be given settings webrtcvad or the rules cannot run with."""
    with pytest.raises(ConfigError):
        VadSettings(**bad)  # type: ignore[arg-type]
