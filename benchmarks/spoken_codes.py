"""Spoken Bluetooth passkeys: how often whisper's text gives the right code, another length, or a wrong code.

Each code is spoken by espeak-ng (voices, speeds and phrasings a user might
use: digits one by one, "oh" for zero, pairs like "twelve thirty four", "double
five", "the code is …"), with 0.6 s of silence before and after (a press starts
before the speech), and goes through the dictation path ``voxkey transcribe``
uses, once with the digits prompt the daemon uses for a code recording
(``voxkey.passkey.PASSKEY_PROMPT``) and once without. ``voxkey.text.digits``
reads each transcript: *right* (the code), *again* (not six digits: the user is
asked to say it again) or *wrong* (six digits, not the code: the pairing fails
and nothing bonds). *Wrong* is the number that must stay 0.

    python benchmarks/spoken_codes.py [--model tiny.en-q5_1] [--json]
    python benchmarks/spoken_codes.py --random 90 [--seed 11]

``--random N`` says N random codes the three ways the spoken-passkey kernel case
says them (``SAYINGS``) and compares the daemon's code transcriber (``prompt``: a
window sized to the speech, and ``CODE_AUDIO_CTX`` positions when that gives too
many digits) with one decode sized (``sized``) or always that wide (``wide``).

Measured (2026-12-03, tiny.en-q5_1, 2-core x86 dev machine), right / again / wrong
of 20: with the prompt 15/5/0 (through ``voxkey transcribe --prompt``) and 14/6/0
(this script); without it 11/9/0 and 11/8/1 (``For 7.01.02`` for "four seven oh
nine one two"). The transcripts are the table of ``tests/text/test_digits.py``.
Exit status 1 if the daemon's side (with the prompt) read a wrong code.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the kernel case's sayings, in tests/

from tests.kernel.cases.bluetooth_spoken import DIGIT_WORDS, SAYINGS

from voxkey.asr import AsrSettings, PhraseTranscriber, Transcript, WhisperEngine
from voxkey.audio import SAMPLE_RATE, Samples, read_wav, write_wav
from voxkey.dictation import transcribe_file
from voxkey.passkey import CODE_AUDIO_CTX, PasskeyEngine, code_prompt
from voxkey.text.digits import passkey_from_speech, read_digits

SAID = [
    ("en-us", 150, "one two three four five six"),
    ("en-us", 150, "four seven zero nine one two"),
    ("en-us", 150, "four seven oh nine one two"),
    ("en-us", 175, "eight eight three zero zero five"),
    ("en-us", 130, "nine, eight, seven, six, five, four"),
    ("en", 150, "zero zero zero one two three"),
    ("en", 150, "five oh two, nine nine one"),
    ("en-us", 150, "twelve thirty four fifty six"),
    ("en-us", 150, "one two three, four five six"),
    ("en-us", 150, "seven seven seven seven seven seven"),
    ("en-us", 150, "two eight four one six three"),
    ("en-gb", 150, "six oh four, three two one"),
    ("en-us", 200, "three one four one five nine"),
    ("en-us", 150, "zero one zero one zero one"),
    ("en-us", 150, "ninety eight seventy six fifty four"),
    ("en-us", 150, "one hundred twenty three four hundred fifty six"),
    ("en-us", 150, "double five two eight one nine"),
    ("en-us", 120, "eight. six. two. zero. four. one."),
    ("en-us", 150, "the code is five five one two zero eight"),
    ("en-us", 150, "oh oh one two three four"),
]
"""(espeak-ng voice, words a minute, what is said); the code is what ``read_digits`` makes of the words."""


class OneWindowCodes(PasskeyEngine):
    """The daemon's code transcriber deciding on one decode: sized to the speech (as before ``CODE_AUDIO_CTX``),
    or always at least ``CODE_AUDIO_CTX`` positions wide."""

    def __init__(self, engine: WhisperEngine, min_audio_ctx: int) -> None:
        super().__init__(engine)
        self.min_audio_ctx = min_audio_ctx

    def transcribe(self, samples: Samples, prompt: str | None = None, **options: object) -> Transcript:
        assert isinstance(self.engine, WhisperEngine)
        return self.engine.transcribe(
            samples, prompt=code_prompt(prompt), repair_loops=False, min_audio_ctx=self.min_audio_ctx
        )


def recordings(directory: Path, count: int, seed: int) -> list[tuple[str, str, Path]]:
    """(code, what was said, recording): ``SAID``, or ``count`` random codes said each of the ``SAYINGS`` ways."""
    if not count:
        return [
            (read_digits(said).digits, said, speak(directory, i, v, s, said)) for i, (v, s, said) in enumerate(SAID)
        ]
    rng = random.Random(seed)
    found = []
    for i in range(count):
        code = f"{rng.randrange(10**6):06d}"
        for way, (voice, speed, between) in enumerate(SAYINGS):
            said = between.join(DIGIT_WORDS[int(digit)] for digit in code)
            found.append((code, said, speak(directory, 3 * i + way, voice, speed, said)))
    return found


def speak(directory: Path, index: int, voice: str, speed: int, text: str) -> Path:
    raw = directory / f"raw-{index:02d}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    samples, _ = read_wav(raw)
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.int16)
    path = directory / f"code-{index:02d}.wav"
    write_wav(path, np.concatenate([gap, samples, gap]))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en-q5_1")
    parser.add_argument("--random", type=int, default=0, metavar="N", help="N random codes, said 3 ways each")
    parser.add_argument("--seed", type=int, default=11, help="of the random codes")
    parser.add_argument("--json", action="store_true", help="one JSON line per recording and side")
    args = parser.parse_args(argv)
    totals: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp, WhisperEngine(AsrSettings(model=args.model)) as engine:
        spoken = recordings(Path(tmp), args.random, args.seed)
        sides: tuple[tuple[str, PhraseTranscriber], ...] = (
            (
                ("prompt", PasskeyEngine(engine)),
                ("sized", OneWindowCodes(engine, 0)),
                ("wide", OneWindowCodes(engine, CODE_AUDIO_CTX)),
            )
            if args.random
            else (("prompt", PasskeyEngine(engine)), ("no-prompt", engine))
        )
        for side, transcriber in sides:
            counts = totals.setdefault(side, {"right": 0, "again": 0, "wrong": 0})
            for code, said, path in spoken:
                text = transcribe_file(transcriber, path).text
                got = passkey_from_speech(text)
                verdict = "again" if got is None else "right" if got == code else "wrong"
                counts[verdict] += 1
                if args.json:
                    print(json.dumps({"side": side, "said": said, "text": text, "verdict": verdict}), flush=True)
    for side, counts in totals.items():
        print(f"{side:<12} right {counts['right']:>3}  again {counts['again']:>3}  wrong {counts['wrong']:>3}")
    return 1 if totals["prompt"]["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
