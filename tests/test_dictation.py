"""When the dictation session spends whisper time on guesses: scheduling rules, with a counting engine.

Whisper's words do not matter here (``test_asr.py`` checks those with the real
model); what matters is which audio gets decoded and when, so the engine
records its calls and answers at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from voxkey.asr import AsrSettings, Transcript
from voxkey.audio import SAMPLE_RATE, Samples
from voxkey.dictation import (
    GUESS_ALLOWANCE_S,
    GUESS_BUDGET,
    HELD_GUESS_PAUSE,
    WHOLE_WINDOW_PHRASE_S,
    DictationSession,
)
from voxkey.text.cleanup import MIN_WORDS_PER_S, SPARSE_PHRASE_MIN_S
from voxkey.vad import PhraseSegmenter, VadSettings


class CountingEngine:
    """A PhraseTranscriber that remembers the length of every stretch it was asked to decode."""

    def __init__(self, compute_s: float = 0.01) -> None:
        self.settings = AsrSettings(context_words=0)
        self.name = "counting"
        self.decoded_s: list[float] = []
        self.called = threading.Event()
        self.compute_s = compute_s  # what each decode reports it cost (it returns at once)
        self.decodes_whole_window = False

    def transcribe(
        self, samples: Samples, prompt: str | None = None, stop: Callable[[], bool] | None = None
    ) -> Transcript:
        seconds = samples.size / SAMPLE_RATE
        self.decoded_s.append(round(seconds, 2))
        self.called.set()
        return Transcript("Words.", seconds, self.compute_s)

    def warm_up(self) -> None:
        pass

    def close(self) -> None:
        pass


class SlowEngine(CountingEngine):
    """Each decode runs until its ``stop`` says so (recorded) or the test lets it finish: a slow whisper."""

    def __init__(self) -> None:
        super().__init__(compute_s=0.05)
        self.finish_now = threading.Event()
        self.stopped: list[float] = []

    def transcribe(
        self, samples: Samples, prompt: str | None = None, stop: Callable[[], bool] | None = None
    ) -> Transcript:
        seconds = samples.size / SAMPLE_RATE
        self.decoded_s.append(round(seconds, 2))
        self.called.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if stop is not None and stop():  # asked before finish_now: a stop set by then always counts
                self.stopped.append(round(seconds, 2))
                return Transcript("", seconds, self.compute_s, stopped=True)
            if self.finish_now.is_set():
                break
            time.sleep(0.002)
        return Transcript("The words that were said.", seconds, self.compute_s)


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.002)


def voiced(seconds: float) -> Samples:
    """A vowel-like buzz that webrtcvad calls speech, with syllable-like loudness changes."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 450, 600, 900), start=1))
    return (6000 * syllables * tone).astype(np.int16)


def quiet(seconds: float) -> Samples:
    return np.zeros(int(seconds * SAMPLE_RATE), np.int16)


def phrase_then_pause(pause_ms: float, settings: VadSettings) -> Samples:
    """3 s of speech, then quiet until the VAD has heard ``pause_ms`` of silence (it hangs over past the sound)."""
    segmenter = PhraseSegmenter(settings)
    audio = [quiet(0.3), voiced(3.0)]
    segmenter.feed(np.concatenate(audio))
    while segmenter.silence_ms < pause_ms:
        audio.append(quiet(settings.frame_ms / 1000))
        segmenter.feed(audio[-1])
    return np.concatenate(audio)


def decodes_after(session: DictationSession, engine: CountingEngine) -> int:
    """How many decodes the worker started once it has had time to act on what it was fed."""
    engine.called.wait(0.5)  # a guess, if one is wanted, starts at once; none waits the whole time
    return len(engine.decoded_s)


@pytest.fixture
def engine() -> CountingEngine:
    return CountingEngine()


def test_a_short_pause_while_the_button_is_held_costs_no_decode(engine: CountingEngine) -> None:
    """Pauses inside a sentence (180-300 ms) rarely end the phrase: a guess there was a wasted whole decode."""
    settings = VadSettings()
    below = HELD_GUESS_PAUSE * settings.phrase_pause_ms - 60
    assert below >= settings.tail_ms + 30  # past tail_ms: the phrase is a candidate already
    session = DictationSession(engine, settings)
    session.start()
    session.feed(phrase_then_pause(below, settings))
    assert decodes_after(session, engine) == 0
    session.cancel()


def test_a_pause_halfway_to_the_end_of_a_phrase_is_guessed_at(engine: CountingEngine) -> None:
    settings = VadSettings()
    beyond = HELD_GUESS_PAUSE * settings.phrase_pause_ms + 90
    assert beyond < settings.phrase_pause_ms - settings.frame_ms  # the phrase is still open: this is a guess
    session = DictationSession(engine, settings)
    session.start()
    session.feed(phrase_then_pause(beyond, settings))
    assert decodes_after(session, engine) == 1
    session.release()
    session.finish()
    assert session.result is not None and session.result.speculation_hits == 1  # the guess was the phrase
    assert len(engine.decoded_s) == 1  # and it was not decoded again


def test_after_release_the_open_phrase_is_guessed_at_once(engine: CountingEngine) -> None:
    """Once the button is up the speaker has stopped: waiting for a longer pause would only add to the wait.

    Not even for the whole tail: its last ``tail_ms - tail_heard_ms`` are digital silence, known in advance.
    """
    settings = VadSettings()
    assert settings.tail_heard_ms + 30 < settings.tail_ms
    session = DictationSession(engine, settings)
    session.start()
    session.feed(phrase_then_pause(settings.tail_heard_ms + 30, settings))
    assert decodes_after(session, engine) == 0
    session.release()
    deadline = time.monotonic() + 5
    while not engine.decoded_s:
        assert time.monotonic() < deadline, "no guess after release"
        engine.called.wait(0.05)
    session.finish()
    assert session.result is not None and session.result.speculation_hits == 1


def test_wrong_guesses_while_the_button_is_held_cost_at_most_the_budget() -> None:
    """A speaker who pauses 450 ms between clauses and goes on: every guess is wrong; they must stay rationed."""
    engine, settings = CountingEngine(compute_s=0.3), VadSettings()
    first = phrase_then_pause(HELD_GUESS_PAUSE * settings.phrase_pause_ms + 90, settings)
    clause = first[int(0.3 * SAMPLE_RATE) :]  # without the quiet before the first: the sentence goes on
    session = DictationSession(engine, settings)
    session.start()
    fed_s = 0.0
    for audio in [first] + [clause] * 11:  # 40 s of one long sentence; the VAD cuts it only at max_phrase_s
        engine.called.clear()
        session.feed(audio)
        fed_s += clause.size / SAMPLE_RATE
        engine.called.wait(0.2)
    guesses = session._speculations
    session.cancel()
    assert guesses >= 2  # the rule guesses at these pauses ...
    assert (guesses - 1) * engine.compute_s <= GUESS_ALLOWANCE_S + GUESS_BUDGET * fed_s  # ... within the budget


def test_a_guess_is_stopped_as_soon_as_the_speaker_goes_on() -> None:
    """Its text can no longer be used, and on a Pi the phrases after it would wait seconds for it."""
    engine, settings = SlowEngine(), VadSettings()
    session = DictationSession(engine, settings)
    session.start()
    session.feed(phrase_then_pause(HELD_GUESS_PAUSE * settings.phrase_pause_ms + 90, settings))
    assert engine.called.wait(5), "no guess at the pause"
    guessed_s = engine.decoded_s[0]
    session.feed(voiced(1.0))  # the sentence goes on
    wait_for(lambda: engine.stopped, "the outgrown guess kept running")
    engine.finish_now.set()
    session.feed(quiet(1.0))
    session.release()
    assert session.finish() == "The words that were said."  # the whole phrase, decoded once it closed
    assert engine.stopped == [guessed_s]
    assert session.result is not None and session.result.speculations_stopped == 1
    assert engine.decoded_s[-1] > guessed_s + 0.9


def test_a_guess_whose_phrase_ends_as_guessed_runs_to_the_end() -> None:
    engine, settings = SlowEngine(), VadSettings()
    session = DictationSession(engine, settings)
    session.start()
    session.feed(phrase_then_pause(HELD_GUESS_PAUSE * settings.phrase_pause_ms + 90, settings))
    assert engine.called.wait(5), "no guess at the pause"
    for _ in range(35):  # the pause grows, frame by frame, into the end of the phrase: the guess is the phrase
        session.feed(quiet(settings.frame_ms / 1000))
    engine.finish_now.set()
    session.release()
    assert session.finish() == "The words that were said."
    assert engine.stopped == []
    assert session.result is not None and session.result.speculation_hits == 1 and len(engine.decoded_s) == 1


def test_a_cancel_stops_the_decode_that_is_running() -> None:
    """The next dictation must not wait for whisper to finish one that was thrown away."""
    engine, settings = SlowEngine(), VadSettings()
    session = DictationSession(engine, settings, speculate=False)
    session.start()
    session.feed(np.concatenate([quiet(0.3), voiced(3.0), quiet(1.0)]))  # a closed phrase: decoded at once
    assert engine.called.wait(5), "the closed phrase was not decoded"
    session.cancel()
    wait_for(lambda: engine.stopped, "the decode of a cancelled dictation kept running")


def sentences(count: int, pause_s: float) -> Samples:
    """``count`` sentences of 3 s joined by pauses that end a phrase (phrase_pause_ms), then 1.5 s of room."""
    parts = [quiet(0.3)]
    for i in range(count):
        parts += [voiced(3.0), quiet(pause_s if i < count - 1 else 1.5)]
    return np.concatenate(parts)


def dictate(engine: CountingEngine, audio: Samples) -> str:
    session = DictationSession(engine, VadSettings(), speculate=False)
    session.start()
    session.feed(audio)
    return session.finish()


def test_an_engine_that_pays_a_whole_window_per_decode_gets_window_sized_phrases() -> None:
    """base-q5_1 pays 30 s of window for every phrase: six sentences must not cost six windows."""
    sentence_by_sentence, window_sized = CountingEngine(), CountingEngine()
    window_sized.decodes_whole_window = True
    audio = sentences(6, 0.8)
    dictate(sentence_by_sentence, audio)
    dictate(window_sized, audio)
    assert len(sentence_by_sentence.decoded_s) == 6
    assert len(window_sized.decoded_s) == 1 and window_sized.decoded_s[0] > 6 * 3.0


def test_window_sized_phrases_end_at_a_thinking_pause_and_stay_inside_whispers_window() -> None:
    engine = CountingEngine()
    engine.decodes_whole_window = True
    talk_on = np.concatenate([voiced(45.0), quiet(1.5)])  # no pause at all: split where whisper still hears all
    dictate(engine, np.concatenate([sentences(2, 0.8), quiet(2.0), talk_on]))  # 3.5 s of quiet after two
    assert len(engine.decoded_s) == 3
    assert engine.decoded_s[0] < 8.0  # the first two sentences: the long pause ended them
    assert WHOLE_WINDOW_PHRASE_S < engine.decoded_s[1] < 30.0  # whisper's window is 30 s


def test_a_window_sized_phrase_with_pauses_is_not_taken_for_noise() -> None:
    """Three words over 8 s are sparse for a phrase of sound, not for one holding two 2.5 s pauses."""
    engine = CountingEngine()
    engine.decodes_whole_window = True
    text = dictate(
        engine, np.concatenate([quiet(0.3), voiced(0.8), quiet(2.5), voiced(0.8), quiet(2.5), voiced(0.8), quiet(1.5)])
    )
    (heard_s,) = engine.decoded_s
    assert heard_s >= SPARSE_PHRASE_MIN_S and MIN_WORDS_PER_S * heard_s > 1  # one word: sparse for that much sound
    assert text == "Words."


class PromptedEngine(CountingEngine):
    """Answers like whisper given the text before as its prompt: ``first``, then ``prompted`` in turn, and
    ``unprompted`` when asked without a prompt after the first phrase."""

    def __init__(self, first: str, prompted: list[str], unprompted: str = "") -> None:
        super().__init__()
        self.settings = AsrSettings(context_words=8)
        self.first, self.prompted, self.unprompted = first, list(prompted), unprompted
        self.prompts: list[str] = []

    def transcribe(
        self, samples: Samples, prompt: str | None = None, stop: Callable[[], bool] | None = None
    ) -> Transcript:
        self.prompts.append(prompt or "")
        text = self.first if len(self.prompts) == 1 else self.prompted.pop(0) if prompt else self.unprompted
        return Transcript(text, samples.size / SAMPLE_RATE, self.compute_s)


def test_a_prompted_phrase_that_ends_at_a_long_pause_ends_its_sentence() -> None:
    """With a prompt whisper leaves a phrase open ("... and other cities"); the pause after it was the full stop."""
    engine = PromptedEngine("The printers of Basel.", ["and of other cities"])
    text = dictate(engine, sentences(2, 0.8))
    assert engine.prompts == ["", "The printers of Basel."]
    assert text == "The printers of Basel. And of other cities."


def test_a_prompted_phrase_cut_at_a_short_pause_joins_the_sentence_that_goes_on() -> None:
    """A long phrase cut at a short pause is often mid-sentence: the full stop it gets is held, then dropped."""
    engine = PromptedEngine(
        "The printers of Basel.", ["and of other cities where they set their type", "and by hand in Rome"]
    )
    long_talk = [voiced(7.0), quiet(0.3), voiced(3.0), quiet(1.5)]  # 7 s > long_phrase_s: cut at the short pause
    text = dictate(engine, np.concatenate([quiet(0.3), voiced(3.0), quiet(0.8), *long_talk]))
    assert len(engine.prompts) == 3
    assert text == ("The printers of Basel. And of other cities where they set their type and by hand in Rome.")


@pytest.mark.parametrize(
    "misled",
    ["Ask.", "copy"],  # most of its words lost; the end of the text before it, copied
    ids=["words-lost", "prompt-copied"],
)
def test_a_phrase_the_prompt_misled_is_decoded_again_without_it(misled: str) -> None:
    first = "We printed in Strasburg, Paris, Lubeck and Basel."
    copied = "in Strasburg, Paris, Lubeck and Basel."
    engine = PromptedEngine(first, [misled if misled != "copy" else copied], "Ask what you can do for your country.")
    text = dictate(engine, sentences(2, 0.8))
    assert engine.prompts[1] and engine.prompts[2] == ""  # the second phrase: again, without the prompt
    assert text.endswith("Basel. Ask what you can do for your country.")
