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
