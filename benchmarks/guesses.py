"""How many speculative decodes a held-button guess rule makes, and how many of them become the phrase.

Deterministic (VAD only, no whisper, no clock): the benchmark's dictations are
fed in 30 ms blocks, and at every block where the open phrase is a candidate
(``PhraseSegmenter.candidate``) and the pause has lasted the rule's threshold,
a guess is counted once per candidate. A guess is *used* when the phrase that
later closes has exactly that audio. Budget and scheduling
(``dictation.GUESS_BUDGET``) are left out: this counts what the rule asks for.

    python benchmarks/guesses.py [--seeds 1 2 3] [--lengths 5 15 30 60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dictation import build_dictation
from voxkey.dictation import HELD_GUESS_PAUSE, SPECULATE_MIN_S
from voxkey.vad import PhraseSegmenter, VadSettings

BLOCK = 480  # 30 ms at 16 kHz, as the microphone delivers it


def count_guesses(fraction: float, seeds: list[int], lengths: list[int]) -> tuple[int, int]:
    """(guesses made, guesses used) over the dictations, when a held guess waits for ``fraction`` of the pause."""
    made = used = 0
    for seed in seeds:
        for length in lengths:
            room, speech_s, _, _ = build_dictation(seed, length)
            room = room[: int(speech_s * 16000)]
            settings = VadSettings()
            segmenter = PhraseSegmenter(settings)
            threshold = max(settings.tail_ms, fraction * settings.phrase_pause_ms)
            guessed: set[tuple[float, int]] = set()
            closed: set[tuple[float, int]] = set()
            for offset in range(0, room.size, BLOCK):
                closed.update(phrase.key for phrase in segmenter.feed(room[offset : offset + BLOCK]))
                candidate = segmenter.candidate()
                if candidate and candidate.duration_s >= SPECULATE_MIN_S and segmenter.silence_ms >= threshold:
                    guessed.add(candidate.key)
            made += len(guessed)
            used += len(guessed & closed)
    return made, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--lengths", type=int, nargs="*", default=[5, 15, 30, 60])
    args = parser.parse_args()
    print("| held guess waits for | guesses | used | wasted |\n|---|---|---|---|")
    for fraction in sorted({0.0, 0.3, HELD_GUESS_PAUSE, 0.6, 0.75}):
        made, used = count_guesses(fraction, args.seeds, args.lengths)
        label = "tail_ms" if fraction == 0 else f"{fraction:.2f} x phrase_pause_ms"
        mark = " (voxkey)" if fraction == HELD_GUESS_PAUSE else ""
        print(f"| {label}{mark} | {made} | {used} | {made - used} |")


if __name__ == "__main__":
    main()
