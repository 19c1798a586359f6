"""Turn raw whisper output into text worth typing.

Whisper was trained on subtitles, so on silence, noise or music it "hears"
the things subtitles contain there: "Thanks for watching!", "[BLANK_AUDIO]",
"(music)", a lone "you" or a full stop. Small quantized models also fall into
loops ("the the the the ..."). A keyboard must never type any of that, so:

* non-speech annotations in brackets, parentheses, asterisks or music notes go;
* a phrase that is nothing but a known hallucination goes;
* a phrase without a single letter or digit goes;
* a word or word sequence repeated back-to-back too often is kept once
  (a word four times, two or three words three times, four or more twice);
* whitespace is normalised, and phrases are joined with one space and the
  capitalisation the sentence needs (new sentence: capital; mid-sentence:
  whisper's habit of capitalising every phrase start is undone for ordinary
  words, never for names or "I").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Whole-phrase hallucinations (compared lower-case, without punctuation).
HALLUCINATIONS: frozenset[str] = frozenset(
    {
        "you",
        "thank you for watching",
        "thanks for watching",
        "thank you so much for watching",
        "thank you very much for watching",
        "thank you for watching and see you next time",
        "thanks for watching and see you next time",
        "please subscribe",
        "please like and subscribe",
        "like and subscribe",
        "dont forget to like and subscribe",
        "subscribe to my channel",
        "see you next time",
        "see you in the next video",
        "ill see you in the next video",
        "ill see you next time",
        "subtitles by the amaraorg community",
        "subtitles by the amara org community",
        "transcription by castingwords",
        "transcribed by",
        "subtitles by",
        "captions by",
        "blank audio",
        "blankaudio",
        "silence",
        "music",
        "applause",
    }
)

# Words that mark a parenthesised or starred annotation as a sound, not speech.
NON_SPEECH_WORDS: frozenset[str] = frozenset(
    {
        "music",
        "upbeat",
        "applause",
        "laughter",
        "laughs",
        "laughing",
        "chuckles",
        "silence",
        "inaudible",
        "indistinct",
        "coughs",
        "coughing",
        "cough",
        "sighs",
        "sigh",
        "noise",
        "static",
        "clapping",
        "beep",
        "beeping",
        "wind",
        "blank",
        "audio",
        "breathing",
        "gasps",
        "no",
        "speech",
        "sound",
        "sounds",
        "background",
        "playing",
        "soft",
        "dramatic",
        "intro",
        "outro",
        "buzzing",
        "humming",
        "whirring",
        "birds",
        "chirping",
        "keyboard",
        "typing",
        "clicking",
        "footsteps",
    }
)

# Ordinary words whisper capitalises only because a phrase starts with them.
_SENTENCE_INNER_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "but",
        "or",
        "nor",
        "so",
        "yet",
        "then",
        "than",
        "that",
        "this",
        "these",
        "those",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "why",
        "how",
        "to",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "onto",
        "about",
        "as",
        "if",
        "because",
        "while",
        "although",
        "though",
        "until",
        "unless",
        "after",
        "before",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "it's",
        "they",
        "them",
        "their",
        "there",
        "here",
        "we",
        "our",
        "us",
        "you",
        "your",
        "he",
        "she",
        "his",
        "her",
        "him",
        "not",
        "no",
        "also",
        "just",
        "only",
        "even",
        "still",
        "very",
        "really",
        "maybe",
        "perhaps",
        "please",
        "thanks",
        "thank",
    ]
)

_BRACKETED = re.compile(r"\[[^\]]*\]|\{[^}]*\}|<[^>]*>")
_PARENTHESISED = re.compile(r"\(([^)]*)\)|\*([^*]*)\*")
_MUSIC = re.compile(r"[♪♫♬]+[^♪♫♬]*[♪♫♬]+|[♪♫♬]+")
_SPEAKER_MARKS = re.compile(r"(^|\s)(>>|-(?=\s))\s*")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:%)\]}])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[{])\s+")
_WORD_CHARS = re.compile(r"[^\w']+")
_HAS_CONTENT = re.compile(r"\w", re.UNICODE)
# Words that go on with a sentence and seldom open one: a full stop before them is whisper's, not the speaker's.
_CONTINUING_WORDS: frozenset[str] = frozenset(
    [
        "as",
        "of",
        "to",
        "than",
        "which",
        "whom",
        "whose",
        "or",
        "nor",
        "and",
        "by",
        "with",
        "from",
        "into",
        "onto",
        "for",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "has",
        "have",
        "had",
    ]
)

CLOSING_PUNCTUATION = ",.!?;:)]}%"
"""Marks that attach to the text before them: no space goes in front (join_two, and the typist between pieces)."""

_TERMINAL = re.compile(r"[.!?…][\"')\]]*$")
_SOFT_END = re.compile(r"[,;:\-–—]$|\w$")

MIN_REPEATS_ONE_WORD = 4  # "very very very" is speech; four in a row is a loop
MIN_REPEATS_PHRASE = 3
MIN_REPEATS_SENTENCE = 2  # nobody dictates the same four words twice in a row; whisper does


def _key(text: str) -> str:
    return _WORD_CHARS.sub(" ", text.lower()).replace("'", "").strip()


def _drop_annotation(match: re.Match[str]) -> str:
    inner = match.group(1) if match.group(1) is not None else match.group(2) or ""
    words = _key(inner).split()
    if words and all(w in NON_SPEECH_WORDS for w in words):
        return " "
    return match.group(0)


def strip_annotations(text: str) -> str:
    """Remove [BLANK_AUDIO], (music), *laughs*, ♪ lyrics ♪ and speaker-change marks."""
    text = _BRACKETED.sub(" ", text)
    text = _MUSIC.sub(" ", text)
    text = _PARENTHESISED.sub(_drop_annotation, text)
    return _SPEAKER_MARKS.sub(r"\1", text)


def normalise_whitespace(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return _SPACE_AFTER_OPEN.sub(r"\1", text)


def is_hallucination(text: str) -> bool:
    """True when the whole phrase is something whisper says to silence or noise."""
    key = " ".join(_key(text).split())
    return not key or key in HALLUCINATIONS


def collapse_repetitions(text: str) -> str:
    """Keep one copy of a word (4+ times) or word sequence (3+ times) repeated back to back."""
    words = text.split()
    changed = True
    while changed:
        changed = False
        keys = [_key(w) for w in words]
        for size in range(1, min(12, len(words) // 2) + 1):
            needed = MIN_REPEATS_ONE_WORD if size == 1 else MIN_REPEATS_PHRASE if size < 4 else MIN_REPEATS_SENTENCE
            i = 0
            while i + size * needed <= len(words):
                unit = keys[i : i + size]
                if not any(unit):
                    i += 1
                    continue
                count = 1
                while keys[i + count * size : i + (count + 1) * size] == unit:
                    count += 1
                if count >= needed:
                    last = words[i + (count - 1) * size : i + count * size]
                    words = words[:i] + words[i : i + size - 1] + last[-1:] + words[i + count * size :]
                    keys = [_key(w) for w in words]
                    changed = True
                i += 1
            if changed:
                break
    return " ".join(words)


SPARSE_PHRASE_MIN_S = 4.0
MIN_WORDS_PER_S = 0.5
"""A phrase of at least SPARSE_PHRASE_MIN_S seconds of sound with fewer words than this per second is noise.

Measured with tiny.en-q5_1: on 10 s of white noise or fan hum whisper says one to three words ("I", "In",
"the", "You", "Good.", "That's a good") with token probabilities up to 0.88, so its confidence cannot tell
them from speech; the recordings of ../shared/speech run at 2–3 words a second, four to six times this
floor. A short phrase ("Yes.") is never judged this way. The VAD keeps noise from whisper in the first
place; this is the second line.
"""


def clean_phrase(text: str, audio_s: float | None = None) -> str:
    """Raw whisper text of one phrase (``audio_s`` of sound) -> what should be typed for it ("" for nothing)."""
    text = strip_annotations(text)
    text = normalise_whitespace(text)
    if not _HAS_CONTENT.search(text) or is_hallucination(text) or _too_sparse(text, audio_s):
        return ""
    text = collapse_repetitions(text)
    return normalise_whitespace(text)


def _too_sparse(text: str, audio_s: float | None) -> bool:
    if audio_s is None or audio_s < SPARSE_PHRASE_MIN_S:
        return False
    return len(_key(text).split()) < MIN_WORDS_PER_S * audio_s


def _first_word(text: str) -> str:
    match = re.match(r"[\"'(\[]*([\w']+)", text)
    return match.group(1) if match else ""


def _capitalise_first(text: str) -> str:
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.upper() + text[i + 1 :]
        if char.isdigit():
            return text
    return text


def _lower_first(text: str) -> str:
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.lower() + text[i + 1 :]
    return text


def _starts_with_one_of(phrase: str, words: frozenset[str]) -> bool:
    word = _first_word(phrase)
    if not word or not word[0].isalpha():
        return False
    return word[0].islower() or (word[1:].islower() and word.lower() in words)


def starts_mid_sentence(phrase: str) -> bool:
    """Whether the phrase reads as the rest of a sentence that ended without a full stop."""
    return _starts_with_one_of(phrase, _SENTENCE_INNER_WORDS)


def continues_after_full_stop(phrase: str) -> bool:
    """Whether a phrase after a short pause goes on with the sentence although whisper put a full stop before it.

    Stricter than ``starts_mid_sentence``: only lower case or words that seldom open a sentence ("as",
    "which", "of"); "The", "That", "But" and "In" open new sentences too often. Measured on the dictation
    benchmark (12 dictations, tiny.en): the wider list dropped the full stop after two finished sentences.
    """
    return _starts_with_one_of(phrase, _CONTINUING_WORDS)


def close_sentence(text: str) -> str:
    """End a phrase that ended at a long pause with a full stop, as whisper does when it has no prompt.

    With the text before it as its prompt, whisper writes a phrase as the continuation of that text and
    often leaves its end open ("... and other cities", "... very closely,"): the pause after it was the
    speaker's full stop. A phrase that already ends a sentence, or ends in a bracket, quote or symbol, is
    left as it is; a trailing comma, semicolon or colon becomes the full stop.
    """
    body = text.rstrip()
    if not body or _TERMINAL.search(body):
        return text
    body = body.rstrip(",;:").rstrip()
    return body + "." if body and body[-1].isalnum() else text


def join_two(previous: str, phrase: str) -> str:
    """Append ``phrase`` to ``previous`` with a sentence's spacing and capitalisation."""
    if not phrase:
        return previous
    if not previous:
        return phrase
    if _TERMINAL.search(previous):
        phrase = _capitalise_first(phrase)
    elif _SOFT_END.search(previous) and starts_mid_sentence(phrase):
        phrase = _lower_first(phrase)
    if phrase[0] in CLOSING_PUNCTUATION or previous[-1] in "([{\n\t " or previous.endswith("\n"):
        return previous + phrase
    return f"{previous} {phrase}"


def join_phrases(phrases: Iterable[str]) -> str:
    """Join cleaned phrases of one dictation into the text to type."""
    text = ""
    for phrase in phrases:
        text = join_two(text, phrase)
    return text


def clean_transcript(raw_phrases: Iterable[str]) -> str:
    """Raw whisper output of each phrase -> the final text."""
    return join_phrases(clean_phrase(p) for p in raw_phrases)
