"""The pairing code said aloud (issue 14, hole 2): heard on the device in time, and a wrong one bonds nothing.

Guest side: ``tests/kernel/cases/bluetooth_spoken.py`` (voxkey's daemon with
its microphone playing espeak-ng's speech of the code the host's agent shows;
a guest whose clock counts instructions, see ``tests/kernel/vm.py``). Bond
levels as in ``tests/kernel/test_bluetooth_passkey.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.kernel.test_bluetooth_passkey import SC_AUTHENTICATED, assert_no_bond, long_term_keys

SPOKEN = pytest.mark.guest_case("bluetooth.spoken_passkey", clock="instructions")


def _rounds(seen: dict[str, Any]) -> list[dict[str, Any]]:
    """The rounds voxkey answered: a wrong one, then the right one.

    Left out, as a user pairs again (``ROUND_TRIES``): BlueZ giving up before it showed a code, and the
    host's 30 s running out before voxkey heard six digits (``timed_out``; a misheard first try leaves a
    second little guest time). At most two of those in all.
    """
    assert seen["ready"], f"the daemon never became ready: {seen['voxkey']['log'][-30:]}"
    assert seen["pairing_mode"], f"a long press did not start pairing mode: {seen['voxkey']['lights_seen']}"
    again = [r for r in seen["rounds"] if "shown" in r and r["timed_out"]]
    assert len(again) <= 2, f"the host's pairing timer ran out {len(again)} times: {again}"
    rounds = [r for r in seen["rounds"] if "shown" in r and not r["timed_out"]]
    assert [r["wrong"] for r in rounds] == [True, False], f"a wrong round then a right one: {seen['rounds']}"
    return rounds


def _heard(one_round: dict[str, Any]) -> None:
    """voxkey answered BlueZ from what it heard (after at most three tries), before the kernel gave up."""
    tries = one_round["tries"]
    assert tries and not tries[-1]["misheard"] and tries[-1].get("answered_at") is not None, (
        f"voxkey never heard six digits: {tries}"
    )


@pytest.mark.kernel
@SPOKEN
def test_a_wrongly_spoken_code_fails_and_leaves_no_bond(guest_case_result: dict[str, Any]) -> None:
    wrong = _rounds(guest_case_result)[0]
    assert wrong["entered"] != wrong["shown"], wrong
    _heard(wrong)
    assert_no_bond(wrong)


@pytest.mark.kernel
@SPOKEN
def test_the_spoken_code_gives_an_authenticated_secure_connections_bond(guest_case_result: dict[str, Any]) -> None:
    seen = guest_case_result
    right = _rounds(seen)[1]
    assert right["entered"] == right["shown"], right
    assert any(call.startswith("DisplayPasskey") for call in right["agent_calls"]), right["agent_calls"]
    _heard(right)
    assert right["paired"], f"the spoken code did not pair: {right}\n{seen['voxkey']['log'][-40:]}"
    assert right["host_device"]["Paired"] and right["host_device"]["Bonded"], right["host_device"]
    for side in ("voxkey_store", "host_store"):
        keys = long_term_keys(right[side])
        assert keys, f"{side} stored no long-term key: {right[side]}"
        assert {key["Authenticated"] for key in keys.values()} == {SC_AUTHENTICATED}, f"{side}: {keys}"


@pytest.mark.kernel
@SPOKEN
def test_the_code_is_never_typed_and_voxkey_says_what_it_did(guest_case_result: dict[str, Any]) -> None:
    seen = guest_case_result
    _rounds(seen)
    rounds = seen["rounds"]  # the timed-out ones too
    assert all(r["typed_during_round"] == 0 for r in rounds), [r["typed_during_round"] for r in rounds]
    assert seen["voxkey"]["typed"] == 0, "a code recording reached the typist"
    lights = seen["voxkey"]["lights_seen"]
    assert "say-code" in lights, f"no 'say the code' light: {lights}"
    log = "\n".join(seen["voxkey"]["log"])
    assert "pairing: code heard, entering it" in log, log[-3000:]
    assert seen["voxkey"]["stopped"] and seen["voxkey"]["exit_code"] == 0, seen["voxkey"]
