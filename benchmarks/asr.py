"""Speech recognition benchmark: voxkey's pipeline against plain pywhispercpp, per model.

For every model in the model folder (default ``../shared/models``) it measures, in one run:

* WER on ``../shared/speech`` (Whisper English normaliser + jiwer) and the real-time
  factor (whisper compute time / audio time) over those 26 recordings;
* peak RSS of a process that loads the model and transcribes everything;
* latency from the end of the audio to the final text for a 5 s and a ~30 s
  dictation built from the same recordings and played at microphone pace.

"ours" is the voxkey path (VAD phrases transcribed by a worker while audio
streams in, tuned decoding, text clean-up). "plain" is pywhispercpp's
``Model.transcribe`` on the whole recording with default parameters (only
``n_threads`` set), started when the recording ends. Each side runs in its own
child process so peak RSS is its own. Numbers are wall-clock on a shared
machine: compare the two sides of one run, not runs with each other. CPU seconds
(``time.process_time``: all threads of the child) are reported beside wall time
because another busy process inflates wall time but hardly CPU time.

Usage: python benchmarks/asr.py [--models tiny.en-q5_1 ...] [--threads 2] [--sides ours plain full-window]
[--json out.json]
(also ``voxkey bench asr -- ARGS``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SPEECH = SHARED / "speech"
DICTATIONS: dict[str, list[str]] = {
    "5s": ["LJ001-0004"],
    "30s": ["LJ001-0001", "LJ001-0005", "LJ001-0009", "LJ001-0011"],
}
PAUSE_S = 0.8  # between sentences of a dictation: a speaker's breath, longer than the VAD's phrase pause
TAIL_S = 0.3  # silence after the last word (the post-roll after release)


def _manifest() -> list[tuple[str, str]]:
    rows = (SPEECH / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(r.split("\t")[0], r.split("\t")[4]) for r in rows]


def _wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return float(jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps]))


def _dictation_audio(name: str) -> tuple[np.ndarray, str]:
    from voxkey.audio import SAMPLE_RATE, read_wav

    texts = dict(_manifest())
    parts: list[np.ndarray] = []
    for ident in DICTATIONS[name]:
        if parts:
            parts.append(np.zeros(int(PAUSE_S * SAMPLE_RATE), np.int16))
        parts.append(read_wav(SPEECH / f"{ident}.wav")[0])
    parts.append(np.zeros(int(TAIL_S * SAMPLE_RATE), np.int16))
    return np.concatenate(parts), " ".join(texts[i] for i in DICTATIONS[name])


def _paced(samples: np.ndarray, block: int = 480) -> Any:
    """Yield blocks at microphone pace; the last yield happens when the recording ends."""
    started = time.monotonic()
    for offset in range(0, samples.size, block):
        due = started + (offset + block) / 16000
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield samples[offset : offset + block]


# --- children ------------------------------------------------------------------------------------------


def child_ours(model: str, threads: int, audio_ctx: str | int = "auto") -> dict[str, Any]:
    from voxkey.asr import AsrSettings, WhisperEngine
    from voxkey.dictation import DictationSession, transcribe_file

    started = time.monotonic()
    engine = WhisperEngine(AsrSettings(model=model, threads=threads, audio_ctx=audio_ctx))
    load_s = time.monotonic() - started
    refs, hyps, audio_s, compute_s = [], [], 0.0, 0.0
    cpu_started = time.process_time()
    for ident, text in _manifest():
        result = transcribe_file(engine, SPEECH / f"{ident}.wav")
        refs.append(text)
        hyps.append(result.text)
        audio_s += result.audio_s
        compute_s += result.compute_s
    cpu_s = time.process_time() - cpu_started
    latency: dict[str, Any] = {}
    for name in DICTATIONS:
        samples, reference = _dictation_audio(name)
        session = DictationSession(engine)
        session.start()
        for block in _paced(samples):
            session.feed(block)
        end_of_audio, cpu_at_end = time.monotonic(), time.process_time()
        text = session.finish()
        latency[name] = {
            "audio_s": round(samples.size / 16000, 2),
            "latency_s": round(time.monotonic() - end_of_audio, 3),
            "latency_cpu_s": round(time.process_time() - cpu_at_end, 3),
            "wer": round(_wer([reference], [text]), 4),
            "phrases": len(session.result.phrases) if session.result else 0,
        }
    engine.close()
    return _summary(load_s, refs, hyps, audio_s, compute_s, cpu_s, latency)


def child_full_window(model: str, threads: int) -> dict[str, Any]:
    """Ours with whisper's full 30 s encoder window on every phrase: isolates what sizing ``audio_ctx`` gains."""
    return child_ours(model, threads, audio_ctx=0)


def child_plain(model: str, threads: int) -> dict[str, Any]:
    import _pywhispercpp as pw

    pw.whisper_log_set(lambda level, text: None)  # only to keep the output readable; no effect on decoding
    from pywhispercpp.model import Model

    models_dir = Path(os.environ.get("VOXKEY_MODEL_DIR", str(SHARED / "models")))
    started = time.monotonic()
    whisper = Model(str(models_dir / f"ggml-{model}.bin"), n_threads=threads)
    load_s = time.monotonic() - started
    refs, hyps, audio_s, compute_s = [], [], 0.0, 0.0
    cpu_started = time.process_time()
    for ident, text in _manifest():
        path = SPEECH / f"{ident}.wav"
        began = time.monotonic()
        segments = whisper.transcribe(str(path))
        compute_s += time.monotonic() - began
        audio_s += path.stat().st_size / 32000
        refs.append(text)
        hyps.append(" ".join(s.text for s in segments))
    cpu_s = time.process_time() - cpu_started
    latency: dict[str, Any] = {}
    for name in DICTATIONS:
        samples, reference = _dictation_audio(name)
        received = list(_paced(samples))  # the recording arrives at microphone pace; plain starts at its end
        end_of_audio, cpu_at_end = time.monotonic(), time.process_time()
        audio = np.concatenate(received).astype(np.float32) / 32768.0
        text = " ".join(s.text for s in whisper.transcribe(audio))
        latency[name] = {
            "audio_s": round(samples.size / 16000, 2),
            "latency_s": round(time.monotonic() - end_of_audio, 3),
            "latency_cpu_s": round(time.process_time() - cpu_at_end, 3),
            "wer": round(_wer([reference], [text]), 4),
            "phrases": 1,
        }
    del whisper
    pw.whisper_log_set(None)
    return _summary(load_s, refs, hyps, audio_s, compute_s, cpu_s, latency)


def _summary(
    load_s: float,
    refs: list[str],
    hyps: list[str],
    audio_s: float,
    compute_s: float,
    cpu_s: float,
    latency: dict[str, Any],
) -> dict[str, Any]:
    return {
        "load_s": round(load_s, 3),
        "wer": round(_wer(refs, hyps), 4),
        "audio_s": round(audio_s, 1),
        "compute_s": round(compute_s, 2),
        "rtf": round(compute_s / audio_s, 4),
        "cpu_s": round(cpu_s, 2),
        "rtf_cpu": round(cpu_s / audio_s, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dictation": latency,
    }


CHILDREN = {"ours": child_ours, "plain": child_plain, "full-window": child_full_window}

# --- parent --------------------------------------------------------------------------------------------


def _run_child(side: str, model: str, threads: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        side,
        "--models",
        model,
        "--threads",
        str(threads),
    ]
    env = dict(os.environ)
    env.setdefault("VOXKEY_MODEL_DIR", str(SHARED / "models"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "firmware"), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {side}/{model} failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _available_models() -> list[str]:
    folder = Path(os.environ.get("VOXKEY_MODEL_DIR", str(SHARED / "models")))
    return sorted(p.name[len("ggml-") : -len(".bin")] for p in folder.glob("ggml-*.bin"))


def _table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Wall-clock figures and CPU-second figures; on a shared machine the CPU ones are the steadier."""
    lines = [
        "| model | side | WER | RTF wall | RTF CPU | peak RSS MB | latency 5 s wall / CPU "
        "| latency 30 s wall / CPU | WER 30 s dictation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, sides in results.items():
        for side, r in sides.items():
            d = r["dictation"]
            lines.append(
                f"| {model} | {side} | {r['wer'] * 100:.2f} % | {r['rtf']:.3f} | {r['rtf_cpu']:.3f} "
                f"| {r['peak_rss_mb']:.0f} "
                f"| {d['5s']['latency_s']:.2f} s / {d['5s']['latency_cpu_s']:.2f} s "
                f"| {d['30s']['latency_s']:.2f} s / {d['30s']['latency_cpu_s']:.2f} s "
                f"| {d['30s']['wer'] * 100:.1f} % |"
            )
        ours = sides.get("ours")
        for peer_name, peer in sides.items():
            if ours is not None and peer_name != "ours":
                lines.append(_ratio_row(model, peer_name, ours, peer))
    return "\n".join(lines)


def _ratio_row(model: str, peer_name: str, ours: dict[str, Any], peer: dict[str, Any]) -> str:
    def ratio(key: str, name: str) -> str:
        return f"{ours['dictation'][name][key] / max(peer['dictation'][name][key], 1e-9):.2f}"

    return (
        f"| {model} | ratio ours/{peer_name} | {ours['wer'] / max(peer['wer'], 1e-9):.2f} "
        f"| {ours['rtf'] / peer['rtf']:.2f} | {ours['rtf_cpu'] / peer['rtf_cpu']:.2f} "
        f"| {ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f} "
        f"| {ratio('latency_s', '5s')} / {ratio('latency_cpu_s', '5s')} "
        f"| {ratio('latency_s', '30s')} / {ratio('latency_cpu_s', '30s')} | |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="model names (default: all in the model folder)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument(
        "--sides",
        nargs="*",
        choices=tuple(CHILDREN),
        default=["ours", "plain"],
        help="what to run per model (full-window: ours without sizing audio_ctx)",
    )
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.models[0], args.threads)))
        return 0
    models = args.models or _available_models()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for model in models:
        results[model] = {}
        for side in args.sides:
            print(f"benchmarking {model} ({side}) ...", file=sys.stderr, flush=True)
            results[model][side] = _run_child(side, model, args.threads)
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
