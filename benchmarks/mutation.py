"""Mutation testing of voxkey's pure cores: how many deliberate small bugs do the tests miss?

For each module below, cosmic-ray (PyPI: ``pip install -e '.[mutation]'``)
makes every small change its operators know (a comparison flipped, a constant
changed, a statement removed, ...), runs that module's tests against each
mutant and records whether a test failed ("killed") or all passed
("survived"). A surviving mutant is a change of behaviour no test notices, or
an equivalent mutant (same behaviour, e.g. ``<`` → ``<=`` where equality
cannot happen); each needs a look.

Not part of CI (minutes to hours on a small machine): a developer runs it and
writes the result into the note or issue it belongs to.

    python benchmarks/mutation.py                 # every module
    python benchmarks/mutation.py keymap ledger   # some
    python benchmarks/mutation.py --json out.json
    python benchmarks/mutation.py --sample 20 ledger   # 20 random mutants (seeded): an estimate

It works on a throw-away copy of the checkout (cosmic-ray edits files in place)
and prints, per module, mutants / killed / survived / surviving % and where
each survivor is.

Results (issue #18, 2026-12-03, seeded samples, ``--seed 18``, on the shared
2-core machine; before = main's code and tests at f90712e run by this script
with its fixes, after = with the tests added for issue #18; the same mutants
both times):

    module    all   sample  before: survived     after: survived   after, not equivalent
    ledger    804   100     41 (41.0 %)  255 s   17 (17.0 %)  286 s   2 (2 %)  HciMonitor bind, kernel only
    keymap    389    60     19 (31.7 %)  156 s    9 (15.0 %)  232 s   0
    pacing    449    30     18 (60.0 %)  489 s   14 (46.7 %)  252 s   0
    commands  384    60     17 (28.3 %)  165 s   13 (21.7 %)  136 s   0
    cleanup   522    60      7 (11.7 %)  242 s    4 (6.7 %)   230 s   0
    config    (stop 22)  60     26 (43.3 %)  387 s   12 (20.0 %)  382 s   0

config's 12 survivors after: ``|`` in annotations (6), ``is`` for ``==`` on
classes (1), ``>=`` for ``==`` on ``eject_gesture`` (no difference for its
allowed values), and reader branches no current setting reaches (a field typed
None, a fixed-length tuple, a Literal inside a union: 4).

Most survivors are equivalent: ``X | None`` in annotations, never evaluated
with ``from __future__ import annotations`` (all 14 of pacing's), ``is`` for
``==`` on small ints and enum members, ``<=`` for ``==`` on unsigned bytes,
``|``/``^`` for ``+`` on disjoint bits, checks made redundant by the next
one. The ledger's ``open_monitor_socket`` needs CAP_NET_RAW and a kernel with
Bluetooth: only ``tests/kernel`` reaches it. The ledger row after is from the
run before ``test_a_process_that_never_closed_its_ledger_s_monitor_still_exits``,
which kills one more (the reader thread as a non-daemon).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    module: str
    """The file cosmic-ray mutates, relative to the repository."""
    tests: tuple[str, ...]
    """pytest arguments that run the tests for it (fast ones: each mutant runs them)."""


TARGETS: dict[str, Target] = {
    "keymap": Target("firmware/voxkey/keymap.py", ("tests/test_keymap.py", "tests/test_layouts_reference.py")),
    "pacing": Target(
        "firmware/voxkey/transports/bluetooth/link.py",
        ("tests/transports/test_bluetooth.py", "tests/transports/test_bluetooth_delivery.py"),
    ),
    "ledger": Target(
        "firmware/voxkey/transports/bluetooth/delivery.py",
        # -k applies to both files: "delivery" keeps every test of test_bluetooth_delivery.py (its names
        # do not say "ledger", and a plain "-k ledger" deselected all of them).
        (
            "tests/transports/test_bluetooth.py",
            "tests/transports/test_bluetooth_delivery.py",
            "-k",
            "'ledger or delivery'",
        ),
    ),
    "cleanup": Target("firmware/voxkey/text/cleanup.py", ("tests/text",)),
    "commands": Target("firmware/voxkey/text/commands.py", ("tests/text",)),
    "config": Target("firmware/voxkey/config.py", ("tests/test_config.py",)),
}
TEST_TIMEOUT_S = 30
"""Per test of a mutant run: these tests take well under a second each, so 30 s means the mutant hangs."""
TIMEOUT_S = 120.0
"""Per mutant: a mutant that makes the tests hang (an endless loop) counts as killed once this passes."""


def copy_checkout(destination: Path) -> Path:
    """The tracked and untracked-but-not-ignored files of this checkout, plus the speech/models beside it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode == 0:
        files = listed.stdout.split("\n")
    else:  # an exported tree (git archive): everything in it
        files = [str(path.relative_to(REPO)) for path in REPO.rglob("*") if path.is_file()]
    root = destination / "repo"
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (destination / "shared").symlink_to(shared)
    return root


def mutate_and_test(
    where: list[str], test_command: str, root: Path, env: dict[str, str], cosmic_ray: str
) -> dict[str, Any]:
    """One mutant, bounded by ``TIMEOUT_S``: a test run that does not end (a thread left running keeps pytest
    from exiting even after its test failed) counts as killed, and the module is put back as it was."""
    worker = subprocess.Popen(
        [cosmic_ray, "mutate-and-test", *where, test_command],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = worker.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.communicate()
        shutil.copy2(REPO / where[0], root / where[0])  # cosmic-ray, killed, could not undo its mutation
        return {"test_outcome": "killed", "output": f"no result within {TIMEOUT_S:.0f} s"}
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def sampled_results(
    session: Path, test_command: str, sample: int, seed: int, root: Path, env: dict[str, str], cosmic_ray: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A seeded random sample of the session's mutants, each run on its own (a whole module takes hours)."""
    dump = subprocess.run([cosmic_ray, "dump", str(session)], cwd=root, env=env, capture_output=True, text=True)
    items = [json.loads(line)[0] for line in dump.stdout.splitlines()]
    items.sort(key=lambda item: [(m["operator_name"], m["occurrence"]) for m in item["mutations"]])  # ids are random
    chosen = random.Random(seed).sample(items, min(sample, len(items)))
    results = []
    for item in chosen:
        mutation = item["mutations"][0]
        where = [mutation["module_path"], mutation["operator_name"], str(mutation["occurrence"])]
        results.append((item, mutate_and_test(where, test_command, root, env, cosmic_ray)))
    return results


def run_target(
    name: str, target: Target, root: Path, cosmic_ray: str, sample: int | None = None, seed: int = 18
) -> dict[str, object]:
    config = root / f"cosmic-ray-{name}.toml"
    session = root / f"cosmic-ray-{name}.sqlite"
    # Test files this checkout does not have yet are left out: the script also measures older trees.
    tests = [arg for arg in target.tests if arg.startswith("-") or (root / arg).exists() or not arg.startswith("tests")]
    # pytest-timeout bounds each test (pyproject's 900 s is for the whole suite's slowest): a mutant that loops
    # forever fails in seconds instead of holding the machine for 15 minutes per test.
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command = " ".join([*pytest, "-o", f"timeout={TEST_TIMEOUT_S}"])
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.module}"\n'
        f"timeout = {TIMEOUT_S}\n"
        "excluded-modules = []\n"
        f'test-command = "{command} {" ".join(tests)}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(root / "firmware")}
    started = time.monotonic()
    subprocess.run([cosmic_ray, "init", str(config), str(session)], cwd=root, env=env, check=True)
    if sample is None:
        subprocess.run([cosmic_ray, "exec", str(config), str(session)], cwd=root, env=env, check=True)
        dump = subprocess.run([cosmic_ray, "dump", str(session)], cwd=root, env=env, capture_output=True, text=True)
        pairs = [json.loads(line) for line in dump.stdout.splitlines()]
    else:
        pairs = sampled_results(session, f"{command} {' '.join(tests)}", sample, seed, root, env, cosmic_ray)
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "other": 0}
    survivors = []
    for item, result in pairs:
        outcome = (result or {}).get("test_outcome") or "other"
        counts[outcome if outcome in counts else "other"] += 1
        if outcome == "survived":
            for mutation in item["mutations"]:
                survivors.append(
                    f"{mutation['module_path']}:{mutation['start_pos'][0]} "
                    f"{mutation['operator_name'].removeprefix('core/')}#{mutation['occurrence']}"
                )
    judged = counts["killed"] + counts["survived"]
    return {
        "module": target.module,
        "mutants": sum(counts.values()),
        "sampled": sample is not None,
        **counts,
        "surviving_percent": round(100 * counts["survived"] / judged, 1) if judged else None,
        "seconds": round(time.monotonic() - started),
        "survivors": survivors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--sample", type=int, help="run only this many mutants per module, chosen at random")
    parser.add_argument("--seed", type=int, default=18, help="for --sample: the same seed picks the same mutants")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(TARGETS))
    if unknown:
        parser.error(f"unknown modules {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    cosmic_ray = shutil.which("cosmic-ray") or str(Path(sys.executable).parent / "cosmic-ray")
    if not Path(cosmic_ray).exists():
        parser.error("cosmic-ray is not installed: pip install -e '.[mutation]'")
    results = {}
    with tempfile.TemporaryDirectory(prefix="voxkey-mutation-") as directory:
        root = copy_checkout(Path(directory))
        for name in args.modules or list(TARGETS):
            result = run_target(name, TARGETS[name], root, cosmic_ray, args.sample, args.seed)
            results[name] = result
            print(
                f"{name:9} {result['module']}: {result['mutants']} mutants, {result['killed']} killed, "
                f"{result['survived']} survived ({result['surviving_percent']} %), "
                f"{result['incompetent']} incompetent, {result['seconds']} s",
                flush=True,
            )
            for survivor in result["survivors"]:  # type: ignore[attr-defined]
                print(f"    survived: {survivor}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
