"""Shared test setup: where the real whisper models and speech recordings are.

Tests use the real files in the workspace's ``shared/`` folder (beside the
repository, as CI lays it out) unless ``VOXKEY_MODEL_DIR`` points elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

if "VOXKEY_MODEL_DIR" not in os.environ and (SHARED / "models").is_dir():
    os.environ["VOXKEY_MODEL_DIR"] = str(SHARED / "models")

REAL_WHISPER_FIXTURES = frozenset({"engine", "tiny_engine"})
"""Fixtures that load a real whisper.cpp model (every test module names its model fixture so)."""


@pytest.hookimpl(tryfirst=True)  # before ``-m "not slow"`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that runs real whisper is ``slow``: seconds to minutes each on a 2-core machine.

    The quick loop (``-m "not kernel and not slow"``) leaves them out; CI and a
    plain ``python3 -m pytest`` run them. Taken from the fixtures a test uses
    (directly or through another fixture, such as the daemon harness), so a new
    whisper test is slow without anyone remembering to mark it. Tests that start
    whisper some other way carry ``@pytest.mark.slow`` themselves.
    """
    for item in items:
        if REAL_WHISPER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# The machine running the tests is small and often busy (VM guests, whisper): hypothesis's
# per-example deadline would turn load into flaky failures, so examples are judged on results only.
settings.register_profile("voxkey", deadline=None)
settings.load_profile("voxkey")


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """gpiozero's own mock pins (PWM-capable, so PWMLED/RGBLED work too) for the duration of one test."""
    factory = MockFactory(pin_class=MockPWMPin)
    previous = Device.pin_factory
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous
