"""Speech to text end to end, with the real whisper models in ../shared/models (never a mock)."""

from __future__ import annotations

import io
import json
import re
import signal
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from tests.speech_fixtures import (
    SPEECH_DIR,
    concat,
    espeak,
    fan_hum,
    load_utterance,
    manifest,
    normalise,
    save,
    silence,
    speech_tmp,
    tiny_engine,
    white_noise,
    word_error_rate,
)
from voxkey.asr import (
    LOOP_RETRY_AUDIO_CTX,
    AsrSettings,
    WhisperEngine,
    audio_ctx_for,
    cut_at_repeat,
    looks_looped,
    trim_loop,
)
from voxkey.audio import SAMPLE_RATE, AudioSettings, WavFileSource
from voxkey.cli import main as voxkey_main
from voxkey.dictation import DictationSession, PhraseResult, repeats_end_of, transcribe_file, transcribe_samples
from voxkey.errors import AudioError, ConfigError, ModelError
from voxkey.text.cleanup import clean_phrase
from voxkey.vad import VadSettings

__all__ = ["speech_tmp", "tiny_engine"]

# Plain pywhispercpp (Model.transcribe, default parameters, 2 threads) on the 26 recordings, measured once:
PLAIN_WER = {"tiny.en-q5_1": 34 / 990}  # 34 word errors in 990 words; the other models: see benchmarks/asr.py
# voxkey's pipeline on the same files, measured and pinned just above the measurement.
PINNED_WER = {"tiny.en-q5_1": 0.0345, "tiny.en-q8_0": 0.0350, "base-q5_1": 0.0390}
PINNED_DICTATION_WER = 0.035  # tiny.en-q5_1, four sentences streamed as phrases; measured 2.3 %

FOX = "I will call you back tomorrow morning."
REPORT = "Please send the report to my office before noon."


def corpus_wer(engine: WhisperEngine) -> float:
    utterances = manifest()
    hypotheses = [transcribe_file(engine, u.path).text for u in utterances]
    return word_error_rate([u.text for u in utterances], hypotheses)


def test_word_error_rate_tiny(tiny_engine: WhisperEngine) -> None:
    wer = corpus_wer(tiny_engine)
    print(f"WER tiny.en-q5_1: {wer:.4f}")
    assert wer <= PINNED_WER["tiny.en-q5_1"]
    assert wer <= PLAIN_WER["tiny.en-q5_1"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny.en-q8_0", "base-q5_1"])
def test_word_error_rate_other_models(model: str) -> None:
    language = "en"
    with WhisperEngine(AsrSettings(model=model, threads=2, language=language)) as engine:
        wer = corpus_wer(engine)
    print(f"WER {model}: {wer:.4f}")
    assert wer <= PINNED_WER[model]


@pytest.mark.parametrize(
    "noise",
    [silence(10), white_noise(10), fan_hum(10)],
    ids=["digital-silence", "white-noise", "fan-hum"],
)
def test_no_words_from_silence_or_noise(tiny_engine: WhisperEngine, noise: np.ndarray) -> None:
    result = transcribe_samples(tiny_engine, noise)
    assert result.text == ""
    assert result.phrases == []  # whisper never even ran


@pytest.mark.parametrize(
    "noise", [silence(10), white_noise(10), fan_hum(10)], ids=["digital-silence", "white-noise", "fan-hum"]
)
def test_whisper_output_on_noise_is_cleaned_away(tiny_engine: WhisperEngine, noise: np.ndarray) -> None:
    """Even if noise got past the VAD, what whisper makes of it must not be typed.

    What whisper says to noise depends on its sampling history (its temperature fallback draws from one
    random generator per model), so over a session it says "You", "the", "I", "In", ...; a long phrase
    with one word in it is noise whatever the word.
    """
    for before in ("LJ001-0019", "LJ001-0022", "jfk"):  # histories after which tiny said "I", "♪ ♪", "I"
        tiny_engine.transcribe(load_utterance(before))
        transcript = tiny_engine.transcribe(noise)
        assert clean_phrase(transcript.text, transcript.audio_s) == "", transcript.text


def test_two_sentences_with_a_long_pause(tiny_engine: WhisperEngine, speech_tmp: Path) -> None:
    fox = espeak(FOX, speech_tmp, "fox")
    report = espeak(REPORT, speech_tmp, "report")
    head = concat(silence(2), fox, silence(15), report)
    recording = concat(head, np.zeros(40 * SAMPLE_RATE - head.size, np.int16))
    assert recording.size == 40 * SAMPLE_RATE
    result = transcribe_file(tiny_engine, save(recording, speech_tmp, "two_sentences_40s"))
    assert normalise(result.text) == normalise(f"{FOX} {REPORT}")
    assert len(result.phrases) == 2
    assert result.text.count(".") == 2 and result.text[0].isupper()


def test_streaming_gives_the_same_text_as_the_whole_recording(tiny_engine: WhisperEngine, speech_tmp: Path) -> None:
    parts = ["LJ001-0001", "LJ001-0005", "LJ001-0009"]
    gap = silence(1.0)
    recording = concat(load_utterance(parts[0]), gap, load_utterance(parts[1]), gap, load_utterance(parts[2]))
    path = save(recording, speech_tmp, "three_sentences")
    whole = clean_phrase(tiny_engine.transcribe(recording).text)

    settings = AudioSettings(block_ms=30)
    done_while_streaming: list[PhraseResult] = []
    source = WavFileSource(path, settings, realtime=True)
    session = DictationSession(tiny_engine, audio=settings, on_phrase=done_while_streaming.append)
    session.start()
    with source:
        for block in source.frames():
            session.feed(block)
        before_finish = len(done_while_streaming)
        streamed = session.finish()
    assert session.result is not None and len(session.result.phrases) >= 3
    assert before_finish >= 1  # earlier phrases were transcribed while audio was still coming in
    assert normalise(streamed) == normalise(whole)


def test_feeding_from_another_thread_in_odd_chunks(tiny_engine: WhisperEngine) -> None:
    recording = concat(load_utterance("jfk"), silence(1), load_utterance("3752-4944-0002"))
    reference = transcribe_samples(tiny_engine, recording).text
    session = DictationSession(tiny_engine)
    session.start()

    def feed() -> None:
        for offset in range(0, recording.size, 777):
            session.feed(recording[offset : offset + 777])

    feeder = threading.Thread(target=feed)
    feeder.start()
    feeder.join(120)
    assert not feeder.is_alive(), "feeding the session hung"
    assert session.finish() == reference


def test_a_tap_types_nothing(tiny_engine: WhisperEngine) -> None:
    word = load_utterance("jfk")[: int(0.25 * SAMPLE_RATE)]
    result = transcribe_samples(tiny_engine, word, audio=AudioSettings(min_recording_ms=300))
    assert result.text == "" and result.too_short


def test_a_very_short_word_still_works(tiny_engine: WhisperEngine, speech_tmp: Path) -> None:
    word = espeak("Yes.", speech_tmp, "yes")
    result = transcribe_samples(tiny_engine, concat(silence(0.5), word, silence(0.5)))
    assert normalise(result.text) == "yes"


def test_a_model_loop_is_capped_and_collapsed(tiny_engine: WhisperEngine) -> None:
    recording = concat(*(load_utterance("3752-4944-0002") for _ in range(3)))
    text = transcribe_samples(tiny_engine, recording).text
    words = normalise(text).split()
    assert "valley of the shadow of death" in normalise(text), text  # the speech itself is kept ...
    assert 12 <= len(words) <= 3 * 12, text  # ... and a loop adds nothing beyond the three repetitions


UNCUTTABLE_LOOP = "9 9 3 1 6 5 8 2 7 4 0 11 12 13 14 15"  # 16 words in 2 s and no run said twice: nothing to keep


def whisper_answering(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch, answer: Callable[[int], str]
) -> list[int]:
    """Make ``engine``'s whisper answer ``answer(audio_ctx)``; returns the windows it is asked for, in order."""
    windows: list[int] = []

    def decode(audio: np.ndarray, params: dict[str, object], stop: object = None) -> list[str]:
        windows.append(int(params["audio_ctx"]))  # type: ignore[call-overload]
        return [answer(windows[-1])]

    monkeypatch.setattr(engine, "_decode", decode)
    return windows


@pytest.mark.parametrize(
    ("looped", "audio_s", "first_copy"),
    [
        # a retry costs 0.3-0.5 s here (3-4x on a Pi) after release; the first copy was the speech every time
        (
            "imitates a much freer hand imitates a much freer hand imitates a much freer hand imitates a",
            2.0,
            "imitates a much freer hand",
        ),
        # seen in the daemon benchmark: dropping the sentence said again left its near-copy, typed twice
        (
            "Paris, Luback and other cities. Paris, Luback and other cities. Paris, Paris, Luback and other cities.",
            2.8,
            "Paris, Luback and other cities.",
        ),
    ],
)
def test_a_loop_with_a_first_copy_is_cut_without_a_second_decode(
    tiny_engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch, looped: str, audio_s: float, first_copy: str
) -> None:
    windows = whisper_answering(tiny_engine, monkeypatch, lambda window: looped)
    assert tiny_engine.transcribe(np.full(int(audio_s * SAMPLE_RATE), 100, np.int16)).text == first_copy
    assert len(windows) == 1


def test_a_loop_the_token_cap_ended_mid_copy_is_cut_to_its_first_copy(
    tiny_engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tight cap the second copy is cut short, and copies that are not back to back do not look looped."""
    capped = "as the invention of the art of printing. As the invention of the"
    windows = whisper_answering(tiny_engine, monkeypatch, lambda window: capped)
    tokens = [10_000]
    monkeypatch.setattr(tiny_engine, "_tokens_decoded", lambda: tokens[0])
    three_seconds = np.full(3 * SAMPLE_RATE, 100, np.int16)
    assert not looks_looped(capped, 3.0)
    assert tiny_engine.transcribe(three_seconds).text == "as the invention of the art of printing."
    assert len(windows) == 1
    assert tiny_engine.transcribe(three_seconds, repair_loops=False).text == capped  # a pairing code: as it came
    tokens[0] = 12  # the same words, from a decode that ended on its own: kept
    assert tiny_engine.transcribe(three_seconds).text == capped


def test_a_loop_is_decoded_again_only_when_asked_and_its_words_stay_out_of_info_logs(
    tiny_engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A spoken pairing code that loops must come back at once (BlueZ waits 30 s) and never reach the journal."""
    looped = [UNCUTTABLE_LOOP]
    windows = whisper_answering(
        tiny_engine, monkeypatch, lambda window: looped[0] if window != LOOP_RETRY_AUDIO_CTX else "9 9 3 1 6 5"
    )
    two_seconds = np.full(2 * SAMPLE_RATE, 100, np.int16)
    caplog.set_level("INFO", logger="voxkey.asr")
    assert tiny_engine.transcribe(two_seconds, repair_loops=False).text == looped[0]
    assert len(windows) == 1 and windows[0] > 0  # the sized window only
    assert tiny_engine.transcribe(two_seconds).text == "9 9 3 1 6 5"
    assert windows[1:] == [windows[0], LOOP_RETRY_AUDIO_CTX]  # by default: again with a wider window ...
    assert "looped" in caplog.text and "9 9 3" not in caplog.text


def test_an_unrepaired_loop_is_not_cut_to_its_first_copy(
    tiny_engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI's guest heard "zero two zero five nine eight" so; the cut, "0 2 0 5 8 0", is six digits and a wrong code."""
    looped = "0 2 0 5 8 0 0 5 8 0 0 0 5 8 0 0 0 0 5 8 0 0 0 5 8 0 0 0 5 8 0"
    windows = whisper_answering(tiny_engine, monkeypatch, lambda window: looped)
    two_seconds = np.full(2 * SAMPLE_RATE, 100, np.int16)
    assert tiny_engine.transcribe(two_seconds, repair_loops=False).text == looped
    assert len(windows) == 1
    assert tiny_engine.transcribe(two_seconds).text == "0 2 0 5 8 0"  # dictation keeps the first copy


def test_a_loop_the_wider_window_cannot_fix_gets_the_full_window(
    tiny_engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wider window keeps the peak memory down; a loop it still makes is not typed."""
    windows = whisper_answering(
        tiny_engine, monkeypatch, lambda window: "9 9 3 1 6 5" if window == 0 else UNCUTTABLE_LOOP
    )
    assert tiny_engine.transcribe(np.full(2 * SAMPLE_RATE, 100, np.int16)).text == "9 9 3 1 6 5"
    assert windows[1:] == [LOOP_RETRY_AUDIO_CTX, 0]


@pytest.mark.parametrize("rate", [44_100, 8_000])
def test_other_rates_and_stereo_transcribe_correctly(tiny_engine: WhisperEngine, tmp_path: Path, rate: int) -> None:
    import subprocess

    path = tmp_path / f"jfk_{rate}_stereo.wav"
    subprocess.run(["sox", str(SPEECH_DIR / "jfk.wav"), "-r", str(rate), "-c", "2", str(path)], check=True)
    text = transcribe_file(tiny_engine, path).text
    reference = (
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )
    assert word_error_rate([reference], [text]) <= 0.1


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00", b"hello, not audio" * 50])
def test_broken_files_are_audio_errors(tiny_engine: WhisperEngine, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError):
        transcribe_file(tiny_engine, path)


def test_truncated_file_transcribes_what_is_there(tiny_engine: WhisperEngine, tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes((SPEECH_DIR / "jfk.wav").read_bytes()[: 44 + 2 * 16000 * 4])
    text = normalise(transcribe_file(tiny_engine, path).text)
    assert text.startswith("and so my fellow americans")


@pytest.mark.slow  # real whisper
def test_initial_prompt_steers_spelling(speech_tmp: Path) -> None:
    recording = load_utterance("3752-4944-0000")  # "captain frere says that the scenery is delightful"
    with WhisperEngine(AsrSettings(model="tiny.en-q5_1", threads=2, initial_prompt="Captain Frere.")) as engine:
        text = transcribe_samples(engine, recording).text
    assert "Frere" in text


def test_audio_ctx_sizing() -> None:
    assert audio_ctx_for(16000, 1.0) == 256  # whole blocks of 256: any other size made the text history-dependent
    assert audio_ctx_for(16000 * 6, 0.5) == 512
    assert audio_ctx_for(16000 * 40, 1.0) == 1500


@pytest.mark.parametrize(
    ("text", "audio_s", "looped"),
    [
        ("It is of the first importance that the letter used should be fine in form.", 5.0, False),
        ("It is fine in form. It is fine in form.", 5.0, True),  # a sentence back to back
        ("that that is is what it is", 3.0, False),  # short repeats are how people talk
        ("one two three four five six seven eight nine ten eleven twelve", 2.0, True),  # 6 words/s
        ("", 0.0, False),
    ],
)
def test_loop_symptoms(text: str, audio_s: float, looped: bool) -> None:
    assert looks_looped(text, audio_s) == looped


def test_a_dictation_of_four_sentences_streams_into_the_right_text(tiny_engine: WhisperEngine) -> None:
    """The benchmark's 30 s dictation: a sized window once made tiny repeat its last sentence (23 % WER)."""
    parts = ["LJ001-0001", "LJ001-0005", "LJ001-0009", "LJ001-0011"]
    pieces = [piece for ident in parts for piece in (load_utterance(ident), silence(0.8))]
    session = DictationSession(tiny_engine)
    session.start()
    for piece in pieces:
        session.feed(piece)
    texts = {u.id: u.text for u in manifest()}
    wer = word_error_rate([" ".join(texts[i] for i in parts)], [session.finish()])
    assert wer <= PINNED_DICTATION_WER, wer


def test_same_audio_same_text_however_the_worker_is_scheduled(tiny_engine: WhisperEngine) -> None:
    """Guesses at pauses, pacing and a busy worker change when text comes, never what it says."""
    parts = ["LJ001-0001", "3752-4944-0000", "LJ001-0005"]
    pause = 0.5  # a held guess waits for HELD_GUESS_PAUSE of phrase_pause_ms; this is past it, short of the end
    recording = concat(*[piece for ident in parts for piece in (load_utterance(ident), silence(pause))], silence(0.7))
    at_once = transcribe_samples(tiny_engine, recording)  # no guesses, the worker never idle
    pieces: list[PhraseResult] = []
    session = DictationSession(tiny_engine, on_phrase=pieces.append)
    session.start()
    for offset in range(0, recording.size, 480):
        session.feed(recording[offset : offset + 480])
        time.sleep(0.003)  # slow enough for the idle worker to guess at pauses
    session.release()
    text = session.finish()
    assert session.result is not None and session.result.speculations >= 1
    assert text == at_once.text
    assert "".join(piece.addition for piece in pieces) == text  # what was typed phrase by phrase adds up


def trimmed(sound: np.ndarray) -> np.ndarray:
    """Without espeak's own silence at both ends, so the test sets the pause exactly."""
    loud = np.nonzero(np.abs(sound.astype(np.int32)) > 300)[0]
    return sound[loud[0] : loud[-1] + 1]


def _held_stop_dictation(engine: WhisperEngine, tmp: Path, pause_s: float) -> tuple[str, list[PhraseResult]]:
    opening = espeak(
        "According to the historians, the invention of movable metal letters in the middle of the fifteenth "
        "century may justly be considered",
        tmp,
        "held-opening",
    )
    rest = espeak("as the invention of the art of printing.", tmp, "held-rest")
    opening, rest = (trimmed(sound) for sound in (opening, rest))
    assert opening.size / SAMPLE_RATE > VadSettings().long_phrase_s  # so a short pause ends it
    pieces: list[PhraseResult] = []
    session = DictationSession(engine, on_phrase=pieces.append)
    session.start()
    session.feed(concat(silence(0.5), opening, silence(pause_s), rest, silence(1)))
    return session.finish(), pieces


def test_a_sentence_cut_at_a_short_pause_goes_on_without_a_full_stop(
    tiny_engine: WhisperEngine, speech_tmp: Path
) -> None:
    """Whisper ends every phrase with a full stop; mid-sentence, the stop was typed and the next word capitalised."""
    text, pieces = _held_stop_dictation(tiny_engine, speech_tmp, 0.3)
    assert len([p for p in pieces if p.audio_s]) == 2  # the short pause did cut the sentence
    assert re.search(r"considered as the", text), text
    assert text.endswith(".")  # the last phrase's stop, held until the dictation ended
    assert "".join(piece.addition for piece in pieces) == text  # typed phrase by phrase, nothing typed twice


def test_a_long_pause_after_a_held_stop_keeps_it(tiny_engine: WhisperEngine, speech_tmp: Path) -> None:
    text, pieces = _held_stop_dictation(tiny_engine, speech_tmp, 0.8)
    assert re.search(r"considered\. As the", text), text
    assert "".join(piece.addition for piece in pieces) == text


def test_the_last_phrase_is_ready_when_the_speaker_stops(tiny_engine: WhisperEngine) -> None:
    """Once the button is up and tail_heard_ms of silence follow the last word, the open phrase is decoded ahead;
    closing it reuses that."""
    speech = load_utterance("3752-4944-0002")
    loud = np.nonzero(np.abs(speech.astype(np.int32)) > 300)[0]
    recording = concat(speech[: loud[-1] + 1], silence(0.25))  # past tail_ms, short of a pause that ends a phrase
    session = DictationSession(tiny_engine)
    session.start()
    session.feed(recording)
    session.release()
    deadline = time.monotonic() + 60
    while session.result is None and not session._speculated:  # the worker's guess at the open phrase
        assert time.monotonic() < deadline, "no guess at the open phrase"
        time.sleep(0.01)
    text = session.finish()
    assert session.result is not None
    assert session.result.speculation_hits == 1 and session.result.phrases[-1].speculative
    assert "valley" in text.lower()


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("The earliest book. The earliest book. The earliest book.", "The earliest book."),
        ("This has been called type. This has been called type. This has been", "This has been called type."),
        ("Setting type. Except in Italy, Gothic. Except in Italy, Gothic.", "Setting type. Except in Italy, Gothic."),
        ("Yes. No. Yes.", "Yes. No. Yes."),  # not back to back: speech
    ],
)
def test_trim_loop_keeps_the_first_copy(raw: str, kept: str) -> None:
    assert trim_loop(raw) == kept


@pytest.mark.parametrize(
    ("raw", "kept"),
    [  # loops tiny made on the benchmark's dictations (sized windows, with and without the prompt)
        (
            "and the valley of the shadow of death he is with us. In the valley of the shadow of death he is with",
            "and the valley of the shadow of death he is with us.",  # the copy began with a changed word
        ),
        (
            "most often used but by printers in Strasburg But by printers in Strasburg",
            "most often used but by printers in Strasburg",
        ),
        (
            "which are an exact imitation, which are an exact imitation, which are an exact",
            "which are an exact imitation",
        ),
        (
            "simpler and therefore far pleasanter and easier to read. And therefore far pleasanter and easier to",
            "simpler and therefore far pleasanter and easier to read.",
        ),
        ("the the the the the the the", "the"),
        ("It is of the first importance that the letter used should be fine in form.", None),  # no run said twice
    ],
)
def test_cut_at_repeat_keeps_the_text_up_to_the_loop(raw: str, kept: str | None) -> None:
    assert cut_at_repeat(raw) == (raw if kept is None else kept)


@pytest.mark.parametrize(
    ("text", "before", "copied"),
    [
        ("in the same operations with ugly ones.", "Then, in the same operations with ugly ones.", True),
        ("With ugly ones.", "in the same operations with ugly ones.", False),  # too short to tell
        ("in the same operations with nice ones.", "in the same operations with ugly ones.", False),
    ],
)
def test_a_phrase_that_copies_the_text_before_it_is_caught(text: str, before: str, copied: bool) -> None:
    assert repeats_end_of(text, before) == copied


def test_one_word_phrases_do_not_loop(tiny_engine: WhisperEngine, speech_tmp: Path) -> None:
    """A reduced encoder window made tiny repeat one-word phrases ("Yes. Yes. Yes. ..."): raw output must be clean."""
    tiny_engine.transcribe(load_utterance("3752-4944-0002"))
    for word in ("Yes.", "No.", "Okay."):
        phrase = concat(silence(0.3), espeak(word, speech_tmp, word.strip(".")), silence(0.3))
        raw = tiny_engine.transcribe(phrase).text
        assert normalise(raw) == normalise(word), raw


@pytest.mark.parametrize(
    "bad",
    [{"threads": 0}, {"audio_ctx": "big"}, {"audio_ctx": 5000}, {"tokens_per_second": 0}, {"token_cap_base": 0}],
)
def test_bad_asr_settings(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        AsrSettings(**bad)  # type: ignore[arg-type]


@pytest.mark.slow  # real whisper
def test_cli_transcribe_plain_and_json(tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        code = voxkey_main(["transcribe", "--json", "-m", "tiny.en-q5_1", str(SPEECH_DIR / "jfk.wav")])
    assert code == 0
    record = json.loads(out.getvalue().strip())
    assert set(record) == {"file", "text", "audio_s", "compute_s"}
    assert record["audio_s"] == 11.0 and record["compute_s"] > 0
    assert normalise(record["text"]).startswith("and so my fellow americans")

    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    out = io.StringIO()
    with redirect_stdout(out):
        code = voxkey_main(["transcribe", str(bad), str(SPEECH_DIR / "3752-4944-0002.wav")])
    assert code == 1  # one file failed, the other was still transcribed
    assert "valley of the shadow of death" in out.getvalue().lower()


def test_cli_models_list_and_verify(capsys: pytest.CaptureFixture[str]) -> None:
    assert voxkey_main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "tiny.en-q5_1" in listing and "ggml-base-q5_1.bin" in listing
    assert voxkey_main(["models", "verify"]) == 0
    verified = capsys.readouterr().out
    assert verified.count("PINNED") == 3


def test_cli_missing_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = voxkey_main(["transcribe", "-m", "small.en-q5_1", str(SPEECH_DIR / "jfk.wav")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "voxkey models download small.en-q5_1" in err


def test_a_decode_stops_part_way_when_asked_and_is_unchanged_when_not(tiny_engine: WhisperEngine) -> None:
    """``stop`` is how a dictation drops a guess the speaker outgrew; it must never change a decode it lets run."""
    samples = load_utterance("LJ001-0001")
    whole = tiny_engine.transcribe(samples)
    polls: list[bool] = []

    def never() -> bool:
        polls.append(False)
        return False

    assert tiny_engine.transcribe(samples, stop=never).text == whole.text
    assert len(polls) > 20  # whisper.cpp asked all along the decode
    polls.clear()

    def after_five() -> bool:
        polls.append(len(polls) >= 5)
        return polls[-1]

    stopped = tiny_engine.transcribe(samples, stop=after_five)
    assert stopped.stopped and stopped.text == ""
    assert len(polls) <= 8  # it ended right after the first yes, long before the ~100s of polls of a whole decode
    assert tiny_engine.transcribe(samples).text == whole.text  # and left nothing behind


def test_every_decode_runs_on_one_thread_whichever_thread_asks(
    tiny_engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """whisper.cpp's OpenMP keeps a thread pool per thread that decodes, and two pools throttle each other
    (4.5 ms a token instead of 1.2 ms here, see ``voxkey.asr._WhisperThread``): the daemon warms up on its main
    thread and decodes on a worker, so both must end up on one thread. An error there reaches the caller."""
    decoded_on: list[threading.Thread] = []
    real_decode = tiny_engine._decode
    failing = threading.Event()

    def decode(audio: np.ndarray, params: dict[str, object], stop: Callable[[], bool] | None = None) -> list[str]:
        decoded_on.append(threading.current_thread())
        if failing.is_set():
            raise ModelError("whisper could not decode")
        return real_decode(audio, params, stop)

    monkeypatch.setattr(tiny_engine, "_decode", decode)
    samples = load_utterance("LJ001-0001")[: 3 * SAMPLE_RATE]
    on_main = tiny_engine.transcribe(samples).text
    texts: list[str] = []
    workers = [threading.Thread(target=lambda: texts.append(tiny_engine.transcribe(samples).text)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert on_main and texts == [on_main, on_main]
    assert len(decoded_on) == 3 and len(set(decoded_on)) == 1
    assert decoded_on[0] not in (threading.main_thread(), *workers)
    failing.set()
    with pytest.raises(ModelError, match="could not decode"):
        tiny_engine.transcribe(samples)


def test_a_caller_interrupted_mid_decode_leaves_the_model_to_be_freed_after_the_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal can end ``transcribe`` while whisper still decodes on its thread; freeing the model then must wait
    for that decode, or whisper.cpp reads freed memory."""
    import _pywhispercpp as pw

    engine = WhisperEngine(AsrSettings(model="tiny.en-q5_1", threads=2))
    events: list[str] = []
    real_decode, real_free = engine._decode, pw.whisper_free

    def decode(audio: np.ndarray, params: dict[str, object], stop: Callable[[], bool] | None = None) -> list[str]:
        texts = real_decode(audio, params, stop)
        events.append("decoded")
        return texts

    def free(context: object) -> None:
        events.append("freed")
        real_free(context)

    monkeypatch.setattr(engine, "_decode", decode)
    monkeypatch.setattr(pw, "whisper_free", free)

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    twenty_seconds = np.tile(load_utterance("LJ001-0001"), 2)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):
            engine.transcribe(twenty_seconds)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert events == []  # the decode was still running when the caller gave up
    engine.close()
    assert events == ["decoded", "freed"]


@pytest.mark.parametrize(
    ("model", "audio_ctx", "whole"),
    [
        ("tiny.en-q5_1", "auto", False),
        ("base-q5_1", "auto", True),
        ("tiny.en-q5_1", 0, True),
        ("tiny.en-q5_1", 768, False),
    ],
)
def test_an_engine_says_when_every_decode_costs_whispers_whole_window(
    model: str, audio_ctx: str | int, whole: bool
) -> None:
    """The dictation sizes its phrases by it: a multilingual model, or a full window asked for, pays 30 s a decode."""
    with WhisperEngine(AsrSettings(model=model, threads=1, audio_ctx=audio_ctx)) as engine:
        assert engine.decodes_whole_window is whole
