"""``voxkey transcribe``, ``voxkey models`` and ``voxkey bench``: speech recognition from the command line.

``transcribe`` runs files through exactly the path a live dictation takes
(VAD phrases, tuned whisper decoding, clean-up) with the daemon's ``asr``,
``vad`` and ``audio`` settings, so what it prints is what the keyboard would
type: the model the installer set up in the config, not a built-in default.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from voxkey.cli.common import add_config_option, load_sections, with_flags
from voxkey.errors import ModelError, VoxkeyError
from voxkey.models import (
    OFFICIAL_MODELS,
    ProgressBar,
    default_download_dir,
    download_model,
    find_model,
    installed_models,
    model_filename,
    model_search_dirs,
    verify_model,
)

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
ASR_FLAGS = {"model": "model", "threads": "threads", "language": "language", "prompt": "initial_prompt"}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    transcribe = subparsers.add_parser("transcribe", help="transcribe WAV files as voxkey would type them")
    transcribe.add_argument("files", nargs="+", metavar="FILE", help="WAV file(s); any rate, mono or stereo")
    transcribe.add_argument("--model", "-m", default=None, help="model name or path (default: asr.model of the config)")
    transcribe.add_argument("--threads", "-t", type=int, default=None, help="whisper threads (default: asr.threads)")
    transcribe.add_argument("--language", "-l", default=None, help="spoken language (default: asr.language, en)")
    transcribe.add_argument(
        "--prompt", default=None, help="initial prompt / custom vocabulary (default: asr.initial_prompt)"
    )
    transcribe.add_argument("--json", action="store_true", help='JSON lines: {"file", "text", "audio_s", "compute_s"}')
    add_config_option(transcribe)
    transcribe.set_defaults(func=run_transcribe)

    models = subparsers.add_parser("models", help="list, download or verify whisper models")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = models_sub.add_parser("list", help="official models and which are installed")
    listing.set_defaults(func=run_models_list)
    download = models_sub.add_parser("download", help="download an official model (sha256-checked)")
    download.add_argument(
        "name",
        nargs="?",
        choices=sorted(OFFICIAL_MODELS),
        metavar="NAME",
        help="e.g. tiny.en-q5_1 (default: asr.model of the config)",
    )
    add_config_option(download)
    download.add_argument("--dir", type=Path, default=None, help="target folder (default: $VOXKEY_MODEL_DIR or cache)")
    download.add_argument("--force", action="store_true", help="download even if the file is there and verifies")
    download.set_defaults(func=run_models_download)
    verify = models_sub.add_parser("verify", help="check installed models (structure and sha256)")
    verify.add_argument("models", nargs="*", metavar="NAME|PATH", help="default: every installed model")
    verify.set_defaults(func=run_models_verify)

    bench = subparsers.add_parser("bench", help="measure speed and accuracy (needs a source checkout)")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    bench_asr = bench_sub.add_parser("asr", help="speech recognition: RTF, RSS, WER, latency vs plain pywhispercpp")
    bench_asr.add_argument("args", nargs=argparse.REMAINDER, help="passed to benchmarks/asr.py (see its --help)")
    bench_asr.set_defaults(func=run_benchmark, script="asr")
    bench_dictation = bench_sub.add_parser(
        "dictation", help="continuous dictation through the daemon vs plain whole-recording whisper, in one run"
    )
    bench_dictation.add_argument("args", nargs=argparse.REMAINDER, help="passed to benchmarks/dictation.py")
    bench_dictation.set_defaults(func=run_benchmark, script="dictation")


def run_transcribe(args: argparse.Namespace) -> int:
    from voxkey.asr import WhisperEngine
    from voxkey.dictation import transcribe_file

    config = load_sections(args, "asr", "vad", "audio")
    settings = with_flags(config["asr"], args, ASR_FLAGS)
    failures = 0
    with WhisperEngine(settings) as engine:
        for name in args.files:
            try:
                result = transcribe_file(engine, name, config["vad"], config["audio"])
            except VoxkeyError as exc:
                failures += 1
                print(f"voxkey: error: {exc}", file=sys.stderr)
                continue
            if args.json:
                record = {
                    "file": name,
                    "text": result.text,
                    "audio_s": round(result.audio_s, 3),
                    "compute_s": round(result.compute_s, 3),
                }
                print(json.dumps(record, ensure_ascii=False), flush=True)
            else:
                print(result.text, flush=True)
    return 1 if failures else 0


def run_models_list(args: argparse.Namespace) -> int:
    installed = {path.name: path for path in installed_models()}
    print(f"{'model':<16} {'size':>8}  installed")
    for name, info in OFFICIAL_MODELS.items():
        path = installed.pop(info.filename, None)
        print(f"{name:<16} {info.size_mb:>6.1f}MB  {path or '-'}")
    for filename, path in sorted(installed.items()):
        print(f"{filename:<16} {'':>8}  {path} (not in the official table)")
    print("search order: " + ", ".join(str(d) for d in model_search_dirs()))
    return 0


def run_models_download(args: argparse.Namespace) -> int:
    if args.name is None:
        args.name = _configured_official_model(args)
    target_dir = args.dir or default_download_dir()
    existing = target_dir / model_filename(args.name)
    if existing.is_file() and not args.force:
        status = verify_model(existing)
        if status.verdict == "official":
            print(f"{existing} is already installed and verified")
            return 0
    info = OFFICIAL_MODELS[args.name]
    progress = ProgressBar(f"{info.filename} ({info.size_mb:.0f} MB)") if sys.stderr.isatty() else None
    path = download_model(args.name, target_dir, progress=progress)
    print(f"{path}: downloaded, sha256 verified")
    return 0


def _configured_official_model(args: argparse.Namespace) -> str:
    """``asr.model`` of the config, which must be a model voxkey knows how to download."""
    model: str = load_sections(args, "asr")["asr"].model
    if model not in OFFICIAL_MODELS:
        raise ModelError(
            f"asr.model {model!r} is not an official model that voxkey can download; "
            f"name one: {', '.join(sorted(OFFICIAL_MODELS))}"
        )
    return model


def run_models_verify(args: argparse.Namespace) -> int:
    paths = [find_model(name) for name in args.models] if args.models else installed_models()
    if not paths:
        raise ModelError("no models installed; run `voxkey models download tiny.en-q5_1`")
    bad = 0
    for path in paths:
        status = verify_model(path)
        bad += not status.ok
        print(f"{status.verdict.upper():<9} {path}  {status.detail}")
    return 1 if bad else 0


def run_benchmark(args: argparse.Namespace) -> int:
    script = BENCHMARKS / f"{args.script}.py"
    if not script.is_file():
        raise VoxkeyError(f"the benchmark needs a voxkey source checkout ({script} is missing)")
    spec = importlib.util.spec_from_file_location(f"voxkey_benchmark_{args.script}", script)
    if spec is None or spec.loader is None:
        raise VoxkeyError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    forwarded = [a for a in args.args if a != "--"]
    return int(module.main(forwarded))
