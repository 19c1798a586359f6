"""Continuous dictation through the real daemon, against plain whole-recording whisper, in one run.

Each dictation is several utterances of ``../shared/speech`` joined by pauses drawn from 0.2-0.9 s
(seeded, so every run and every side hears the same audio), about 5, 15, 30 and 60 s long. Sides,
alternating dictation by dictation, each in its own child process so peak RSS is its own:

* **ours**: voxkey's ``Daemon`` as ``voxkey run`` builds it, with a WAV "room" as its microphone
  (read from disk and played at microphone pace from the moment the daemon opens it, so the
  process holds no more of it than a microphone would), the button pressed at the
  start and released when the last utterance's file ends, and a host that timestamps every HID
  report. Run twice per dictation: the two texts must be the same (same audio, same text).
* **plain**: pywhispercpp's ``Model.transcribe`` of the whole recording with default parameters
  (only ``n_threads`` set), started when the recording ends. The recording is made the way a
  sounddevice callback makes it: the same room, played by the same code at microphone pace, each
  block appended to a list as it arrives; so plain pays for listening too, as a real one would.

Figures per dictation: release to first and last character (ours; a negative first means text was
typed while the button was still held) and release to text (plain, typing not included); WER
(Whisper's English normaliser + jiwer); CPU seconds per second of audio from press to last
character (all threads of the child); peak RSS; doubled 4-grams (word 4-grams the text holds more
often than the reference: typed twice). ``--cpu-quota CORES`` runs both sides in a cgroup limited
to that many of this machine's cores, to approximate a slower Pi (see ``--help``).

Usage: python benchmarks/dictation.py [--models tiny.en-q5_1 ...] [--threads 2] [--cpu-quota 1.1]
[--lengths 5 15 30 60] [--seeds 1] [--json out.json]   (also ``voxkey bench dictation -- ARGS``)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SPEECH = SHARED / "speech"
SAMPLE_RATE = 16_000
PAUSES_S = (0.2, 0.9)
ROOM_TAIL_S = 1.5  # the room goes on after the release: the post-roll hears it
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")


# --- dictations --------------------------------------------------------------------------------------


def _manifest() -> list[tuple[str, str]]:
    rows = (SPEECH / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(row.split("\t")[0], row.split("\t")[4]) for row in rows]


def build_dictation(seed: int, target_s: float) -> tuple[np.ndarray, float, str, list[str]]:
    """Utterances joined by natural pauses: (room audio, seconds until the last utterance ends, reference,
    the reference of each utterance)."""
    sys.path.insert(0, str(REPO / "firmware"))
    from voxkey.audio import read_wav

    rng = random.Random(f"{seed}-{target_s:g}")
    items = _manifest()
    rng.shuffle(items)
    corpus_s = sum(read_wav(SPEECH / f"{ident}.wav")[0].size for ident, _ in items) / SAMPLE_RATE
    for _ in range(int(target_s // corpus_s)):  # longer than the corpus (the 5-minute memory run): go round again
        again = _manifest()
        rng.shuffle(again)
        items += again
    parts: list[np.ndarray] = []
    refs: list[str] = []
    total = 0.0
    for ident, text in items:
        if parts and total >= target_s - 2.0:
            break
        if parts:
            pause = np.zeros(int(rng.uniform(*PAUSES_S) * SAMPLE_RATE), np.int16)
            parts.append(pause)
            total += pause.size / SAMPLE_RATE
        samples = read_wav(SPEECH / f"{ident}.wav")[0]
        parts.append(samples)
        refs.append(text)
        total += samples.size / SAMPLE_RATE
    speech_s = total
    parts.append(np.zeros(int(ROOM_TAIL_S * SAMPLE_RATE), np.int16))
    return np.concatenate(parts), speech_s, " ".join(refs), refs


def wer(reference: str, hypothesis: str) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    return float(jiwer.wer(normalise(reference), normalise(hypothesis) or "<empty>"))


_SENTENCE_END = re.compile(r"[.?!][\"')]*$")


def _word_key(token: str) -> str:
    return re.sub(r"[^\w']", "", token.lower())


def format_errors(utterances: list[str], hypothesis: str) -> tuple[int, int]:
    """Wrong sentence breaks and capitals inside utterances: (errors, words judged).

    WER's normaliser ignores case and punctuation; this judges what phrase boundaries break. A word is
    judged when the text has it (same spelling) and the reference gives its case and punctuation (LJ
    Speech does, LibriSpeech is upper case) and it is not an utterance's first or last word: the clips
    join mid-sentence, where a full stop is as right as none; but an utterance that ends a sentence
    needs its full stop, whatever follows. An error is a capital where the reference has none (or the
    reverse), or a sentence end (. ? !) after it where the reference has none (or the reverse).
    """
    import difflib

    ref_tokens: list[tuple[str, bool, bool, bool]] = []  # key, judged, capital, sentence end
    for utterance in utterances:
        tokens = utterance.split()
        cased = not utterance.isupper()
        for i, token in enumerate(tokens):
            end = bool(_SENTENCE_END.search(token))
            judged = cased and 0 < i < len(tokens) - 1 and token[:1].isalpha()
            if cased and i == len(tokens) - 1 and end and i > 0:
                judged = True  # a finished sentence: a full stop after it is right whatever follows
            ref_tokens.append((_word_key(token), judged, token[:1].isupper(), end))
    hyp = hypothesis.split()
    matcher = difflib.SequenceMatcher(None, [t[0] for t in ref_tokens], [_word_key(t) for t in hyp], autojunk=False)
    errors = judged = 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            key, is_judged, capital, end = ref_tokens[block.a + k]
            if not is_judged or not key:
                continue
            word = hyp[block.b + k]
            judged += 1
            errors += (word[:1].isupper() != capital) + (bool(_SENTENCE_END.search(word)) != end)
    return errors, judged


def doubled_ngrams(reference: str, hypothesis: str, n: int = 4) -> int:
    """Word n-grams the text holds more often than the reference: words typed twice."""

    def grams(text: str) -> Counter[tuple[str, ...]]:
        words = re.findall(r"[\w']+", text.lower())
        return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    ours, truth = grams(hypothesis), grams(reference)
    return sum(count - truth[gram] for gram, count in ours.items() if count > max(1, truth[gram]))


# --- children ----------------------------------------------------------------------------------------


def play_room(path: Path, block_ms: int, started_at: float, stop: threading.Event, hear: Any) -> None:
    """The room as a microphone hears it: ``block_ms`` blocks read from disk at microphone pace, each handed
    to ``hear`` as it is due. Both sides record through this, so both pay what listening costs."""
    block = block_ms * SAMPLE_RATE // 1000
    with wave.open(str(path), "rb") as room_file:
        played = 0
        while not stop.is_set():
            frames = room_file.readframes(block)
            if not frames:
                return
            played += len(frames) // 2
            delay = started_at + played / SAMPLE_RATE - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            hear(np.frombuffer(frames, "<i2").copy())


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(model: str, threads: int, room: Path, speech_s: float) -> dict[str, Any]:
    from voxkey.asr import AsrSettings
    from voxkey.audio import AudioSettings, AudioSource
    from voxkey.config import ButtonSettings, Config, LedSettings, OutputSettings
    from voxkey.daemon import Daemon, RunOptions
    from voxkey.keymap import Layout, decode
    from voxkey.transports.host import Links
    from voxkey.ui import ButtonEdge

    class TimedHost:
        """A host that keeps every report with the time it arrived."""

        name = "bench-host"

        def __init__(self) -> None:
            self.reports: list[tuple[float, bytes]] = []

        def wait_for_host(self, deadline: float | None) -> None:
            return None  # always plugged in

        def send(self, report: bytes, deadline: float | None) -> None:
            self.reports.append((time.monotonic(), report))

        def led_state(self) -> int:
            return 0

        def release_all(self) -> None:
            return None

        def close(self) -> None:
            return None

    host = TimedHost()
    opened = threading.Event()
    opened_at = [0.0]

    class Room(AudioSource):
        """The room as a microphone hears it: read from disk block by block at microphone pace.

        Not a ``WavFileSource``, which reads the whole file into memory: on a Pi the sound is in the
        air, and a 5-minute room held in the daemon's process would add 10-20 MB to its peak RSS.
        """

        def __init__(self, path: Path, settings: AudioSettings) -> None:
            super().__init__(settings)
            self.path = path
            self._stop = threading.Event()
            self._thread: threading.Thread | None = None

        def open(self) -> None:
            self._thread = threading.Thread(target=self._play, name="bench-room", daemon=True)
            opened_at[0] = time.monotonic()
            self._thread.start()
            opened.set()

        def _play(self) -> None:
            play_room(self.path, self.settings.block_ms, opened_at[0], self._stop, self.buffer.push)

        def close(self) -> None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            self.buffer.stop(post_roll=False)

    config = Config(
        button=ButtonSettings(source="terminal", mode="hold"),
        leds=LedSettings(kind="none"),
        # the default limit (300 s) would cut the 5-minute dictation's last words: not what is measured here
        audio=AudioSettings(max_recording_s=max(AudioSettings().max_recording_s, speech_s + 60)),
        asr=AsrSettings(model=model, threads=threads),
        output=OutputSettings(transport="terminal"),
    )
    daemon = Daemon(
        config,
        RunOptions(exit_when_idle=False),
        audio_factory=lambda: Room(room, config.audio),
        link_factory=lambda c: Links([host]),  # type: ignore[list-item]
        buttons_factory=lambda d: None,
    )
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    if not daemon.ready.wait(120):
        raise SystemExit("daemon did not start")
    cpu_at_press = _cpu_s()
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
    cpu_s = _cpu_s() - cpu_at_press
    daemon.request_stop("benchmark over")
    runner.join(60)
    dictation = daemon.pipeline.last_stopped.session.result if daemon.pipeline.last_stopped is not None else None
    times = [at for at, report in host.reports if any(report[2:])]  # key presses, not releases
    text = decode([report for _, report in host.reports], Layout.load("us"))
    return {
        "text": text,
        "first_s": round(times[0] - release_at, 3) if times else None,
        "last_s": round(times[-1] - release_at, 3) if times else None,
        "cpu_s": round(cpu_s, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "phrases": [(round(p.audio_s, 1), round(p.compute_s, 2), p.speculative) for p in dictation.phrases]
        if dictation
        else [],
        "whisper_s": round(dictation.compute_s, 2) if dictation else None,
        "guesses": (dictation.speculations, dictation.speculation_hits, dictation.speculations_stopped)
        if dictation
        else None,
    }


def child_plain(model: str, threads: int, room: Path, speech_s: float) -> dict[str, Any]:
    import _pywhispercpp as pw

    pw.whisper_log_set(lambda level, text: None)  # only to keep the output readable; no effect on decoding
    from pywhispercpp.model import Model

    sys.path.insert(0, str(REPO / "firmware"))
    from voxkey.audio import AudioSettings
    from voxkey.models import find_model

    whisper = Model(str(find_model(model)), n_threads=threads, print_progress=False)
    # Recorded as a sounddevice callback would: each block appended as the microphone delivers it.
    blocks: list[np.ndarray] = []
    stop = threading.Event()
    cpu_at_press = _cpu_s()
    pressed = time.monotonic()
    recorder = threading.Thread(
        target=play_room, args=(room, AudioSettings().block_ms, pressed, stop, blocks.append), name="bench-room"
    )
    recorder.start()
    time.sleep(max(0.0, pressed + speech_s - time.monotonic()))
    released = time.monotonic()
    wanted = int(speech_s * SAMPLE_RATE)
    while sum(block.size for block in blocks) < wanted and recorder.is_alive():
        time.sleep(0.005)  # the block holding the release moment is still in the air
    stop.set()
    recorder.join()
    samples = np.concatenate(blocks)[:wanted]
    text = " ".join(s.text for s in whisper.transcribe(samples.astype(np.float32) / 32768.0))
    last_s = time.monotonic() - released
    result = {
        "text": text.strip(),
        "first_s": round(last_s, 3),
        "last_s": round(last_s, 3),
        "cpu_s": round(_cpu_s() - cpu_at_press, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    os._exit(_print(result))  # pywhispercpp 1.5 aborts in interpreter teardown after a log callback


def _print(result: dict[str, Any]) -> int:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


CHILDREN = {"ours": child_ours, "plain": child_plain}


# --- throttling ------------------------------------------------------------------------------------------


def make_cgroup(cores: float) -> Path:
    """A cgroup limited to ``cores`` of this machine (v1 ``cpu`` controller or v2 ``cpu.max``); needs root."""
    period = 100_000
    quota = int(cores * period)
    if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
        group = CGROUP_V1 / "voxkey-bench"
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(period))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
        return group / "cgroup.procs"
    group = CGROUP_V2 / "voxkey-bench"
    group.mkdir(exist_ok=True)
    (group / "cpu.max").write_text(f"{quota} {period}")
    return group / "cgroup.procs"


# --- parent ------------------------------------------------------------------------------------------


def run_child(side: str, model: str, threads: int, room: Path, speech_s: float, cgroup: Path | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--models", model]
    command += ["--threads", str(threads), "--room", str(room), "--speech-s", str(speech_s)]
    env = dict(os.environ)
    env.setdefault("VOXKEY_MODEL_DIR", str(SHARED / "models"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "firmware"), env.get("PYTHONPATH", "")) if p)

    def enter_cgroup() -> None:
        if cgroup is not None:
            cgroup.write_text(str(os.getpid()))

    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, preexec_fn=enter_cgroup)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {side}/{model} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from voxkey.audio import write_wav

    cgroup = make_cgroup(args.cpu_quota) if args.cpu_quota else None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="voxkey-bench-") as tmp:
        for model in args.models:
            rows = []
            for seed in args.seeds:
                for length in args.lengths:
                    room_audio, speech_s, reference, utterances = build_dictation(seed, length)
                    room = Path(tmp) / f"room-{seed}-{length}.wav"
                    write_wav(room, room_audio)
                    print(f"{model}: dictation {length} s (seed {seed}, {speech_s:.1f} s)", file=sys.stderr, flush=True)
                    runs = {}
                    for side in ("ours", "plain") if args.once else ("ours", "plain", "ours-again"):
                        runs[side] = run_child(side.split("-")[0], model, args.threads, room, speech_s, cgroup)
                        runs[side]["wer"] = round(wer(reference, runs[side]["text"]), 4)
                        runs[side]["doubled"] = doubled_ngrams(reference, runs[side]["text"])
                        runs[side]["format"] = format_errors(utterances, runs[side]["text"])
                    row = {"length": length, "seed": seed, "audio_s": round(speech_s, 2), "ref": reference}
                    rows.append({**row, **runs})
            results[model] = rows
    return results


def _overall_wer(rows: list[dict[str, Any]], side: str) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    refs = [normalise(r["ref"]) for r in rows]
    hyps = [normalise(r[side]["text"]) or "<empty>" for r in rows]
    return float(jiwer.wer(refs, hyps))


def _format_rate(rows: list[dict[str, Any]], side: str) -> float:
    errors = sum(r[side]["format"][0] for r in rows)
    judged = sum(r[side]["format"][1] for r in rows)
    return 100.0 * errors / max(1, judged)


def table(results: dict[str, Any], quota: float | None) -> str:
    where = f"CPU quota {quota} cores of this machine" if quota else "this machine, no quota"
    lines = [
        f"Measured on {where}.",
        "",
        "| model | dictation | ours: release → first / last char | plain: release → text | ratio last/plain "
        "| WER ours / plain | CPU s per audio s ours / plain | peak RSS MB ours / plain | doubled 4-grams ours / plain "
        "| same text twice |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, rows in results.items():
        for r in rows:
            ours, plain = r["ours"], r["plain"]
            again = r.get("ours-again")
            last = max(ours["last_s"] or 0.0, again["last_s"] or 0.0 if again else 0.0)
            first = ours["first_s"] if ours["first_s"] is not None else float("nan")
            lines.append(
                f"| {model} | {r['audio_s']:.0f} s | {first:+.2f} / {last:.2f} s | {plain['last_s']:.2f} s "
                f"| {last / max(plain['last_s'], 1e-9):.2f} | {ours['wer'] * 100:.1f} / {plain['wer'] * 100:.1f} % "
                f"| {ours['cpu_s'] / r['audio_s']:.3f} / {plain['cpu_s'] / r['audio_s']:.3f} "
                f"| {ours['peak_rss_mb']:.0f} / {plain['peak_rss_mb']:.0f} "
                f"| {ours['doubled'] + (again['doubled'] if again else 0)} / {plain['doubled']} "
                f"| {'not run' if not again else 'yes' if ours['text'] == again['text'] else 'NO'} |"
            )
        ours_wer, plain_wer = _overall_wer(rows, "ours"), _overall_wer(rows, "plain")
        cpu = sum(r["ours"]["cpu_s"] for r in rows) / max(1e-9, sum(r["plain"]["cpu_s"] for r in rows))
        lines.append(
            f"| {model} | all | | | | {ours_wer * 100:.2f} / {plain_wer * 100:.2f} % | ratio {cpu:.2f} | | | |"
        )
        lines.append(
            f"| {model} | case and sentence-end errors per 100 judged words (see format_errors) "
            f"| {_format_rate(rows, 'ours'):.1f} / {_format_rate(rows, 'plain'):.1f} | | | | | | | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["tiny.en-q5_1"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lengths", nargs="*", type=int, default=[5, 15, 30, 60])
    parser.add_argument("--seeds", nargs="*", type=int, default=[1])
    parser.add_argument(
        "--cpu-quota",
        type=float,
        default=None,
        help="limit both sides to this many of this machine's cores (root; a Pi 4 with 4 threads is about 1.1, "
        "a Zero 2 W about 0.5, taking a Pi 4 core as 3.5x and a Zero 2 W core as 7x slower than one here)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument(
        "--once", action="store_true", help="run ours once per dictation (long memory runs); no same-text check"
    )
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--room", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--speech-s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _print(CHILDREN[args.child](args.models[0], args.threads, args.room, args.speech_s))
    sys.path.insert(0, str(REPO / "firmware"))
    results = measure(args)
    print(table(results, args.cpu_quota))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    with suppress(OSError):
        (CGROUP_V1 / "voxkey-bench").rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
