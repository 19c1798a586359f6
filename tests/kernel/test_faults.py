"""Issue #14's fault rows on a real kernel (guest side: ``tests/kernel/cases/faults.py``).

The microphone (``snd-aloop``'s card, unbound from its driver mid-recording, as a pulled USB microphone
is) must end the recording with a clear error within the stall timeout, keep what it heard, close
without hanging, and record again once the card is back, in the same process (the daemon opens a new
source at the next press; it is not restarted).
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.kernel
@pytest.mark.guest_case("faults.microphone_vanishes")
def test_microphone_vanishing_mid_recording_ends_it_clearly_and_it_records_again_when_back(
    guest_case_result: dict[str, Any],
) -> None:
    seen = guest_case_result
    assert seen["rc"] == 0, seen["stderr"]
    vanish = seen["vanish"]
    assert vanish["error"] and "microphone" in vanish["error"], vanish
    assert vanish["captured_s"] >= 2.0, vanish  # what was heard before the card went is kept
    assert vanish["ended_after_unplug_s"] is not None and vanish["ended_after_unplug_s"] < 2.0 + 3.0, vanish
    assert vanish["close_s"] < 5.0 and vanish["unbind_done"], vanish
    assert seen["card_present_after_bind"], seen
    back = seen["back_same_process"]
    assert "exception" not in back, back
    assert back["error"] is None and back["captured_s"] >= 2.0, back
