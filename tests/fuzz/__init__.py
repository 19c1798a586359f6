"""Fuzz tests: hypothesis-generated inputs at voxkey's boundaries (config files, WAV files, text, spoken
commands, what a Bluetooth host writes).

Each test's example count is sized so the whole folder runs in well under a minute in CI. A deeper run
multiplies every count: ``VOXKEY_FUZZ_SCALE=20 python -m pytest tests/fuzz``. Each bug the fuzzers found
is pinned as an ``@example`` so it stays fixed whatever the random draw.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("VOXKEY_FUZZ_SCALE", "1")))


def budget(examples: int) -> settings:
    """Hypothesis settings for ``examples`` examples (times VOXKEY_FUZZ_SCALE); tmp_path is reused on purpose."""
    return settings(
        max_examples=examples * SCALE,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
