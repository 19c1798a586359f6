"""Guest-side cases of the kernel harness, registered by name.

A case is a function that runs *inside* the virtme-ng guest (as root, on the
real kernel) and returns a JSON-able dict of raw observations. It asserts
nothing: the host-side pytest test owns the verdict, so a failure shows the
full evidence and a diff instead of a bare guest traceback.

Adding a case: write ``@guest_case("area.what", modules=(...))`` on a function
in any module of this package, then ask for its result in a test with
``@pytest.mark.kernel`` and the ``guest_results`` fixture (see
``tests/kernel/conftest.py``). One guest boot runs every case the session needs,
in registration order, so cases of one area may build on each other (e.g. the
gadget stays up between USB cases) but each should also work alone.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CaseResult = dict[str, Any]


@dataclass(frozen=True)
class GuestContext:
    """What a case knows about the guest it runs in."""

    repo: Path
    """The repository checkout (read-only in the guest)."""
    work_dir: Path
    """A writable directory shared with the host (results, logs)."""
    python: str
    """The interpreter that runs the harness."""
    site_paths: tuple[str, ...] = ()
    """Its package directories (the guest runs Python with ``-S``, see ``vm.site_paths``)."""

    def voxkey_command(self, *args: str) -> list[str]:
        """``voxkey ARGS`` from this checkout, started as quickly as the guest allows."""
        return [self.python, "-S", "-m", "voxkey", *args]

    def voxkey_env(self) -> dict[str, str]:
        """Environment that makes ``voxkey_command`` import this checkout's code and its dependencies."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.repo / "firmware"), *self.site_paths])
        env["PYTHONUNBUFFERED"] = "1"
        return env


CaseFunction = Callable[[GuestContext], CaseResult]


@dataclass(frozen=True)
class Case:
    name: str
    function: CaseFunction
    modules: tuple[str, ...]
    """Kernel modules to load before the case runs (modprobe names)."""
    timeout_s: float


CASES: dict[str, Case] = {}


def guest_case(
    name: str, modules: tuple[str, ...] = (), timeout_s: float = 300.0
) -> Callable[[CaseFunction], CaseFunction]:
    """Register ``function`` as the guest case ``name``."""

    def register(function: CaseFunction) -> CaseFunction:
        if name in CASES:
            raise ValueError(f"guest case {name!r} registered twice")
        CASES[name] = Case(name, function, modules, timeout_s)
        return function

    return register


def load_all_cases() -> tuple[dict[str, Case], dict[str, str]]:
    """Import every module of this package so their cases register.

    A module that fails to import costs only its own cases: the error is
    returned (module → message) instead of stopping every other area's cases.
    """
    errors: dict[str, str] = {}
    for module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        try:
            importlib.import_module(f"{__name__}.{module.name}")
        except Exception as exc:
            errors[module.name] = f"{type(exc).__name__}: {exc}"
    return CASES, errors
