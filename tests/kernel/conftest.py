"""One virtme-ng guest boot per pytest session (per guest clock) for every ``kernel`` test.

A kernel test names the guest cases it reads with ``@pytest.mark.guest_case``;
collection gathers those names, the session boots the guest once and runs
exactly those cases, and each test then judges its case's observations.
A case that judges on-device work by the guest's timers says
``@pytest.mark.guest_case(name, clock="instructions")`` and runs in a second
boot whose clock counts emulated instructions (``vm.INSTRUCTION_CLOCK``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.vm import BOOT_CLOCKS, GuestRun, GuestUnavailable, run_cases

GUEST_CASES = pytest.StashKey[dict[str, list[str]]]()
GUEST_RUNS = pytest.StashKey[dict[str, GuestRun]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "guest_case(*names, clock='wall'): guest cases (tests/kernel/cases) this kernel test reads, "
        "and the guest clock they run with ('instructions': see tests/kernel/vm.py)",
    )


KERNEL_TIMEOUT_S = 2700
"""pytest-timeout for kernel tests: the first one boots the guest and runs every case (vm.run_cases: 1800 s)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("kernel") is not None:
            item.add_marker(pytest.mark.timeout(KERNEL_TIMEOUT_S))


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
    session.config.stash[GUEST_CASES] = {clock: list(cases) for clock, cases in names.items()}


def _boot(config: pytest.Config, clock: str, tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    """The guest run of ``clock``'s cases: booted at the first test that needs it, then reused."""
    runs = config.stash.setdefault(GUEST_RUNS, {})
    if clock not in runs:
        names = config.stash.get(GUEST_CASES, {}).get(clock, [])
        keep = os.environ.get("VOXKEY_GUEST_DIR")
        if keep:
            directory = Path(keep) if clock == "wall" else Path(keep) / clock
        else:
            directory = tmp_path_factory.mktemp(f"guest-{clock}")
        try:
            runs[clock] = run_cases(names, directory=directory, clock=clock)
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
