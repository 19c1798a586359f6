from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxkey.text.cleanup import (
    clean_phrase,
    clean_transcript,
    collapse_repetitions,
    continues_after_full_stop,
    is_hallucination,
    join_phrases,
    join_two,
    normalise_whitespace,
    strip_annotations,
)


@pytest.mark.parametrize(
    "raw",
    [
        "[BLANK_AUDIO]",
        " [ Silence ] ",
        "(music)",
        "(upbeat music)",
        "*laughs*",
        "♪ la la la ♪",
        "♪",
        "you",
        " You. ",
        "Thank you for watching!",
        "Thanks for watching.",
        "Please subscribe.",
        "Subtitles by the Amara.org community",
        ".",
        "...",
        "?!",
        " - ",
        "",
    ],
)
def test_known_hallucinations_and_noise_type_nothing(raw: str) -> None:
    assert clean_phrase(raw) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(music) Hello there.", "Hello there."),
        ("[BLANK_AUDIO] Send it now.", "Send it now."),
        ("Hello  world , how are you ?", "Hello world, how are you?"),
        (">> Yes, that works.", "Yes, that works."),
        ("(Pause for effect) is not a sound word", "(Pause for effect) is not a sound word"),
        ("Thank you.", "Thank you."),  # real dictation: only the subtitle outro forms are dropped
        ("You can do it.", "You can do it."),
    ],
)
def test_speech_is_kept(raw: str, expected: str) -> None:
    assert clean_phrase(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("the the the the the cat sat", "the cat sat"),
        ("I think I think I think that is it.", "I think that is it."),
        ("one two three one two three one two three four", "one two three four"),
        ("It is over. It is over. It is over. It is over.", "It is over."),
        ("very very very good", "very very very good"),  # three of one word can be emphasis
        ("no, no", "no, no"),
        # thresholds by length: two or three words need three copies, four or more words two
        ("very good very good", "very good very good"),
        ("see you there see you there", "see you there see you there"),
        ("turn it off now turn it off now", "turn it off now"),
        # a loop mid-sentence keeps the words before it and its last copy's punctuation
        ("I said no, no, no, no.", "I said no."),
        ("We said go on go on go on.", "We said go on."),
        # a word without letters (a dash) before a loop does not stop the search
        ("— no no no no", "— no"),
    ],
)
def test_repetition_loops_collapse(raw: str, expected: str) -> None:
    assert collapse_repetitions(raw) == expected


def test_long_loop_from_a_quantized_model_collapses() -> None:
    loop = "And so my fellow Americans " + "ask not " * 40 + "what you can do."
    assert clean_phrase(loop) == "And so my fellow Americans ask not what you can do."


def test_annotations_inside_text() -> None:
    assert strip_annotations("a [Music] b (applause) c").split() == ["a", "b", "c"]


def test_hallucination_check_ignores_case_and_punctuation() -> None:
    assert is_hallucination("THANK YOU FOR WATCHING!!!")
    assert not is_hallucination("thank you for watching the kids")


@pytest.mark.parametrize(
    ("previous", "phrase", "expected"),
    [
        ("Hello world.", "this is me", "Hello world. This is me"),
        ("Is it?", "yes", "Is it? Yes"),
        ("We went to the shop", "And bought bread.", "We went to the shop and bought bread."),
        ("I said,", "The cat is here.", "I said, the cat is here."),
        ("I met", "Paris at noon", "I met Paris at noon"),  # names keep their capital
        ("and then", "I left.", "and then I left."),
        ("Total", ", give or take.", "Total, give or take."),
        ("", "Hello.", "Hello."),
        ("Hello.", "", "Hello."),
        ("Line one\n", "Next", "Line one\nNext"),
    ],
)
def test_joining_phrases(previous: str, phrase: str, expected: str) -> None:
    assert join_two(previous, phrase) == expected


def test_clean_transcript_drops_hallucinated_phrases_between_real_ones() -> None:
    raw = ["Send the invoice today.", "[BLANK_AUDIO]", "Thanks for watching!", "then call Anna."]
    assert clean_transcript(raw) == "Send the invoice today. Then call Anna."


text_strategy = st.text(alphabet=st.sampled_from(list("abc XYZ.,!?'-()[]♪\n\t")), max_size=60)


@settings(deadline=None)
@given(text_strategy)
def test_clean_phrase_is_idempotent_and_tidy(raw: str) -> None:
    once = clean_phrase(raw)
    assert clean_phrase(once) == once
    assert once == once.strip()
    assert "  " not in once


@settings(deadline=None)
@given(st.lists(text_strategy, max_size=6))
def test_joined_text_has_no_double_spaces(raws: list[str]) -> None:
    text = join_phrases(clean_phrase(r) for r in raws)
    assert "  " not in text
    assert text == text.strip()


def test_normalise_whitespace() -> None:
    assert normalise_whitespace("  a \t b\n c ( d ) . ") == "a b c (d)."


def test_whisper_repeating_a_clause_once_is_collapsed() -> None:
    raw = "this has since been called missal type this has since been called missal type"
    assert collapse_repetitions(raw) == "this has since been called missal type"


@pytest.mark.parametrize(
    ("raw", "audio_s", "typed"),
    [
        ("I", 10.0, ""),  # what tiny.en says to 10 s of white noise or fan hum
        ("That's a good", 10.0, ""),
        ("Yes.", 1.2, "Yes."),  # a short phrase is never judged by its word rate
        ("I", None, "I"),
        ("Call me back later.", 6.0, "Call me back later."),
    ],
)
def test_a_long_phrase_with_almost_no_words_is_noise(raw: str, audio_s: float | None, typed: str) -> None:
    assert clean_phrase(raw, audio_s) == typed


@pytest.mark.parametrize(
    ("phrase", "continues"),
    [
        ("as the invention of the art of printing.", True),
        ("As the invention of the art of printing.", True),  # whisper's capital, not the speaker's
        ("Which were the immediate predecessors.", True),
        ("The earliest book printed with movable types.", False),  # new sentences open like this
        ("That the forms of printed letters should follow.", False),
        ("But though on the whole.", False),
        ("Basil, Paris, Lubeck and other cities.", False),  # a name
        ("1455 was the year.", False),
        ("", False),
    ],
)
def test_what_goes_on_after_a_full_stop_whisper_put_at_a_short_pause(phrase: str, continues: bool) -> None:
    assert continues_after_full_stop(phrase) is continues
