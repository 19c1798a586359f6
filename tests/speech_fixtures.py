"""Shared helpers for the speech tests: real recordings, real models, made-up sounds.

Import the fixtures you use into a test module (``from tests.speech_fixtures
import tiny_engine``). Synthetic speech comes from espeak-ng and is built at
test time, so nothing binary is stored in the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from voxkey.asr import AsrSettings, WhisperEngine
from voxkey.audio import SAMPLE_RATE, Samples, float_to_samples, read_wav, write_wav

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SPEECH_DIR = SHARED / "speech"


def model_dir() -> Path:
    return Path(os.environ.get("VOXKEY_MODEL_DIR", str(SHARED / "models")))


@dataclass(frozen=True)
class Utterance:
    id: str
    path: Path
    seconds: float
    text: str


def manifest() -> list[Utterance]:
    rows = (SPEECH_DIR / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    utterances = []
    for row in rows:
        ident, seconds, _source, _licence, text = row.split("\t")
        utterances.append(Utterance(ident, SPEECH_DIR / f"{ident}.wav", float(seconds), text))
    return utterances


def normalise(text: str) -> str:
    from whisper_normalizer.english import EnglishTextNormalizer

    return " ".join(EnglishTextNormalizer()(text).split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER after Whisper's English normalisation (case, punctuation, spelled numbers)."""
    import jiwer

    return float(jiwer.wer([normalise(r) for r in references], [normalise(h) for h in hypotheses]))


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing command(s) {', '.join(missing)}: apt-get install espeak-ng sox")


def espeak(text: str, directory: Path, name: str) -> Samples:
    """Synthetic speech as 16 kHz int16 (espeak-ng writes 22.05 kHz; read_wav resamples with soxr)."""
    require_tools("espeak-ng")
    path = directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    samples, _ = read_wav(path)
    return samples


def silence(seconds: float) -> Samples:
    return np.zeros(int(seconds * SAMPLE_RATE), np.int16)


def white_noise(seconds: float, level: float = 0.1, seed: int = 1) -> Samples:
    rng = np.random.default_rng(seed)
    return float_to_samples(rng.normal(0.0, level, int(seconds * SAMPLE_RATE)))


def fan_hum(seconds: float, seed: int = 2) -> Samples:
    """Mains hum with harmonics, a slow wobble and some broadband air noise, like a desk fan."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wobble = 1.0 + 0.1 * np.sin(2 * np.pi * 0.5 * t)
    tone = sum(amp * np.sin(2 * np.pi * freq * t) for freq, amp in ((50, 0.15), (100, 0.08), (150, 0.05), (300, 0.02)))
    air = np.convolve(rng.normal(0.0, 0.05, t.size), np.ones(8) / 8, mode="same")
    return float_to_samples(wobble * tone + air)


def concat(*parts: Samples) -> Samples:
    return np.concatenate(parts).astype(np.int16)


def save(samples: Samples, directory: Path, name: str) -> Path:
    path = directory / f"{name}.wav"
    write_wav(path, samples)
    return path


def load_utterance(ident: str) -> Samples:
    samples, _ = read_wav(SPEECH_DIR / f"{ident}.wav")
    return samples


@pytest.fixture(scope="session")
def tiny_engine() -> Iterator[WhisperEngine]:
    with WhisperEngine(AsrSettings(model="tiny.en-q5_1", threads=2)) as engine:
        yield engine


@pytest.fixture(scope="session")
def speech_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")
