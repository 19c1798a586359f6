"""One virtme-ng guest boot per pytest session for every ``kernel`` test.

A kernel test names the guest cases it reads with ``@pytest.mark.guest_case``;
collection gathers those names, the session fixture boots the guest once and
runs exactly those cases, and each test then judges its case's observations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.vm import GuestRun, GuestUnavailable, run_cases

GUEST_CASES = pytest.StashKey[list[str]]()
GUEST_RUN = pytest.StashKey[GuestRun]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guest_case(*names): guest cases (tests/kernel/cases) this kernel test reads")


KERNEL_TIMEOUT_S = 2700
"""pytest-timeout for kernel tests: the first one boots the guest and runs every case (vm.run_cases: 1800 s)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("kernel") is not None:
            item.add_marker(pytest.mark.timeout(KERNEL_TIMEOUT_S))


def pytest_collection_finish(session: pytest.Session) -> None:
    """After -k/-m deselection: boot only for the cases the selected tests read."""
    names: dict[str, None] = {}
    for item in session.items:
        for marker in item.iter_markers("guest_case"):
            names.update(dict.fromkeys(marker.args))
    session.config.stash[GUEST_CASES] = list(names)


@pytest.fixture(scope="session")
def guest_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    """Boot the guest once and run every guest case this session's tests asked for."""
    names = request.config.stash.get(GUEST_CASES, [])
    keep = os.environ.get("VOXKEY_GUEST_DIR")
    directory = Path(keep) if keep else tmp_path_factory.mktemp("guest")
    try:
        run = run_cases(names, directory=directory)
    except GuestUnavailable as exc:
        pytest.fail(f"cannot boot the kernel test guest: {exc}", pytrace=False)
    request.config.stash[GUEST_RUN] = run
    return run


@pytest.fixture
def guest_case_result(request: pytest.FixtureRequest, guest_run: GuestRun) -> dict[str, Any]:
    """Observations of the one guest case named by this test's ``guest_case`` marker."""
    marker = request.node.get_closest_marker("guest_case")
    if marker is None or len(marker.args) != 1:
        raise pytest.UsageError("guest_case_result needs exactly one @pytest.mark.guest_case(name)")
    name = marker.args[0]
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
    run = config.stash.get(GUEST_RUN, None)
    if run is None:
        return
    guest = run.results.get("guest", {})
    timings = ", ".join(f"{name} {outcome.get('seconds')} s" for name, outcome in run.results.get("cases", {}).items())
    terminalreporter.write_line(
        f"kernel guest ({guest.get('kernel')}): wall {run.wall_seconds:.0f} s, "
        f"boot to runner {run.boot_seconds} s, cases {guest.get('cases_seconds')} s [{timings}]; "
        f"files in {run.directory}"
    )
