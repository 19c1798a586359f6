"""One virtme-ng guest boot per pytest session (per guest clock) for every ``kernel`` test.

A kernel test names the guest cases it reads with ``@pytest.mark.guest_case``;
collection gathers those names, the session boots the guest once and runs
exactly those cases, and each test then judges its case's observations.
A case that judges on-device work by the guest's timers says
``@pytest.mark.guest_case(name, clock="instructions")`` and runs in a second
boot whose clock counts emulated instructions (``vm.INSTRUCTION_CLOCK``).

The boots start in the background as soon as collection is done, one after the
other, and the kernel tests run last: QEMU emulates the guest on one core while
the host-side tests run on the other, and the kernel tests only collect the
results (a full CI run: ~25 min of guests no longer added to ~22 min of host tests).
``VOXKEY_GUEST_EARLY=0`` boots at the first kernel test instead, with nothing else running.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.vm import BOOT_CLOCKS, INSTRUCTION_CLOCK, GuestBoot, GuestRun, GuestUnavailable, start_cases

GUEST_CASES = pytest.StashKey[dict[str, list[str]]]()
GUEST_RUNS = pytest.StashKey[dict[str, GuestRun]]()
GUESTS = pytest.StashKey["BackgroundGuests"]()
BOOT_TIMEOUT_S = 1800.0
"""One boot and its cases (``vm.run_cases``'s bound)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "guest_case(*names, clock='wall'): guest cases (tests/kernel/cases) this kernel test reads, "
        "and the guest clock they run with ('instructions': see tests/kernel/vm.py)",
    )


KERNEL_TIMEOUT_S = 3900
"""pytest-timeout for kernel tests: the first one may wait for both background boots (``BOOT_TIMEOUT_S`` each)."""


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle: the kernel tests keep their shuffled order
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Kernel tests last (they read what the background guests saw), each with a time limit that covers the boots."""
    for item in items:
        if item.get_closest_marker("kernel") is not None:
            item.add_marker(pytest.mark.timeout(KERNEL_TIMEOUT_S))
    items.sort(key=lambda item: item.get_closest_marker("guest_case") is not None)  # stable: the shuffle stays


def _clock(marker: pytest.Mark) -> str:
    clock = str(marker.kwargs.get("clock", "wall"))
    if clock not in BOOT_CLOCKS:
        raise pytest.UsageError(f"guest_case clock={clock!r}: one of {BOOT_CLOCKS}")
    return clock


def pytest_collection_finish(session: pytest.Session) -> None:
    """After -k/-m deselection: boot only for the cases the selected tests read, one boot per clock."""
    names: dict[str, dict[str, None]] = {}
    for item in session.items:
        for marker in item.iter_markers("guest_case"):
            names.setdefault(_clock(marker), {}).update(dict.fromkeys(marker.args))
    config = session.config
    config.stash[GUEST_CASES] = {clock: list(cases) for clock, cases in names.items()}
    if names and not config.option.collectonly and os.environ.get("VOXKEY_GUEST_EARLY", "1") != "0":
        guests = BackgroundGuests(config.stash[GUEST_CASES], config._tmp_path_factory)  # type: ignore[attr-defined]
        config.stash[GUESTS] = guests
        guests.start()


class BackgroundGuests:
    """The session's guest boots, one after the other in a background thread (never two QEMUs at once).

    The instruction-clock boot goes first: its guest judges time by counted instructions, so sharing the
    machine with the host tests does not change what it measures; the wall-clock boot follows.
    """

    def __init__(self, cases: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory) -> None:
        self.cases, self.tmp_path_factory = cases, tmp_path_factory
        self.order = sorted(cases, key=lambda clock: clock != INSTRUCTION_CLOCK)
        self.runs: dict[str, GuestRun | Exception] = {}
        self.done = {clock: threading.Event() for clock in self.order}
        self._lock = threading.Lock()
        self._current: GuestBoot | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="kernel-guests", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        for clock in self.order:
            try:
                with self._lock:
                    if self._stopped:
                        return
                    directory = _directory(clock, self.tmp_path_factory)
                    self._current = start_cases(self.cases[clock], directory, clock=clock)
                self.runs[clock] = self._current.wait(BOOT_TIMEOUT_S)
            except Exception as exc:  # handed to the test that reads this clock's cases
                self.runs[clock] = exc
            finally:
                self.done[clock].set()

    def result(self, clock: str) -> GuestRun:
        self.done[clock].wait()
        run = self.runs.get(clock, GuestUnavailable("the session ended before this guest booted"))
        if isinstance(run, GuestUnavailable):
            raise run
        if isinstance(run, Exception):
            raise GuestUnavailable(f"{type(run).__name__}: {run}") from run
        return run

    def stop(self) -> None:
        """The session ends: no further boot, and a guest still running is killed."""
        with self._lock:
            self._stopped = True
            if self._current is not None:
                self._current.kill()


def pytest_unconfigure(config: pytest.Config) -> None:
    guests = config.stash.get(GUESTS, None)
    if guests is not None:
        guests.stop()


def _directory(clock: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    keep = os.environ.get("VOXKEY_GUEST_DIR")
    if keep:
        return Path(keep) if clock == "wall" else Path(keep) / clock
    return tmp_path_factory.mktemp(f"guest-{clock}")


def _boot(config: pytest.Config, clock: str, tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    """The guest run of ``clock``'s cases: from the background boot, else booted now; then reused."""
    runs = config.stash.setdefault(GUEST_RUNS, {})
    if clock not in runs:
        names = config.stash.get(GUEST_CASES, {}).get(clock, [])
        guests = config.stash.get(GUESTS, None)
        try:
            if guests is not None and clock in guests.done:
                runs[clock] = guests.result(clock)
            else:
                runs[clock] = start_cases(names, _directory(clock, tmp_path_factory), clock=clock).wait(BOOT_TIMEOUT_S)
        except GuestUnavailable as exc:
            pytest.fail(f"cannot boot the kernel test guest: {exc}", pytrace=False)
    return runs[clock]


@pytest.fixture(scope="session")
def guest_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    """The wall-clock guest, booted once for every wall-clock case this session's tests asked for."""
    return _boot(request.config, "wall", tmp_path_factory)


@pytest.fixture
def guest_case_result(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Observations of the one guest case named by this test's ``guest_case`` marker."""
    marker = request.node.get_closest_marker("guest_case")
    if marker is None or len(marker.args) != 1:
        raise pytest.UsageError("guest_case_result needs exactly one @pytest.mark.guest_case(name)")
    name = marker.args[0]
    guest_run = _boot(request.config, _clock(marker), tmp_path_factory)
    outcome = guest_run.case(name)
    if not outcome:
        finished = guest_run.results.get("guest", {}).get("finished")
        pytest.fail(
            f"guest case {name} did not run (guest {'finished' if finished else 'did not finish'}, "
            f"vng rc {guest_run.returncode}, {guest_run.wall_seconds:.0f} s; "
            f"case modules that failed to import: {guest_run.results.get('guest', {}).get('import_errors')}); "
            f"log {guest_run.directory}/vng.log:\n{guest_run.log_tail()}",
            pytrace=False,
        )
    if outcome.get("status") != "ran":
        pytest.fail(f"guest case {name} raised {outcome.get('error')}\n{outcome.get('traceback', '')}", pytrace=False)
    observations: dict[str, Any] = outcome["observations"]
    return observations


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for clock, run in config.stash.get(GUEST_RUNS, {}).items():
        guest = run.results.get("guest", {})
        timings = ", ".join(
            f"{name} {outcome.get('seconds')} s" for name, outcome in run.results.get("cases", {}).items()
        )
        terminalreporter.write_line(
            f"kernel guest ({guest.get('kernel')}, {clock} clock): wall {run.wall_seconds:.0f} s, "
            f"boot to runner {run.boot_seconds} s (guest time), cases {guest.get('cases_seconds')} s [{timings}]; "
            f"files in {run.directory}"
        )
