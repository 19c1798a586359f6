"""Passkey pairing (issue 14, hole 2) on a real kernel and BlueZ: the right code bonds, a wrong one does not.

Guest side: ``tests/kernel/cases/bluetooth_passkey.py`` (the code is typed on
``voxkey pair``'s terminal there). The spoken code, heard by whisper in the
guest, is ``tests/kernel/test_bluetooth_spoken.py``.

BlueZ stores an LE long-term key's security as ``Authenticated=`` (the mgmt key
type): 0 legacy unauthenticated, 1 legacy authenticated, 2 LE Secure
Connections unauthenticated (Just Works), 3 LE Secure Connections
authenticated (passkey, MITM protection). BlueZ 5.82 writes a peripheral's
key under ``[PeripheralLongTermKey]`` and ``[SlaveLongTermKey]`` (the old name).
"""

from __future__ import annotations

from typing import Any

import pytest

SC_AUTHENTICATED = "3"
SC_UNAUTHENTICATED = "2"


def long_term_keys(store: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The LTK groups of one side's ``info`` file (whatever BlueZ version names them)."""
    groups: dict[str, dict[str, str]] = store.get("groups", {}) if store["exists"] else {}
    return {name: values for name, values in groups.items() if name.endswith("LongTermKey")}


def assert_no_bond(wrong: dict[str, Any]) -> None:
    """A round with a wrong code: BlueZ failed the pairing and neither side keeps a key."""
    assert not wrong["paired"], f"a wrong code paired: {wrong}"
    assert "AuthenticationFailed" in wrong.get("pair_error", ""), wrong
    assert not wrong["host_device"]["Paired"] and not wrong["host_device"]["Bonded"], wrong["host_device"]
    for side in ("voxkey_store", "host_store"):
        assert not long_term_keys(wrong[side]), f"{side} kept a key after a wrong code: {wrong[side]}"


def _rounds(seen: dict[str, Any]) -> list[dict[str, Any]]:
    assert seen["pairing_mode"], f"voxkey pair never entered pairing mode: {seen['voxkey']}"
    rounds = [r for r in seen["rounds"] if "shown" in r]  # BlueZ gave up before showing a code: tried again
    assert [r["wrong"] for r in rounds] == [True, False], f"a wrong round then a right one: {seen['rounds']}"
    return rounds


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.passkey_pairing")
def test_a_wrong_code_fails_and_leaves_no_bond(guest_case_result: dict[str, Any]) -> None:
    wrong = _rounds(guest_case_result)[0]
    assert wrong["entered"] != wrong["shown"], wrong
    assert_no_bond(wrong)


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.passkey_pairing")
def test_the_right_code_gives_an_authenticated_secure_connections_bond(guest_case_result: dict[str, Any]) -> None:
    seen = guest_case_result
    right = _rounds(seen)[1]
    assert right["entered"] == right["shown"], right
    assert right["paired"], f"the right code did not pair: {right}\n{seen['voxkey']['log_tail']}"
    assert any(call.startswith("DisplayPasskey") for call in right["agent_calls"]), (
        f"the host did not display the code: {right['agent_calls']}, host IO capability {seen['host_io_cap']}"
    )
    assert right["host_device"]["Paired"] and right["host_device"]["Bonded"], right["host_device"]
    for side in ("voxkey_store", "host_store"):
        keys = long_term_keys(right[side])
        assert keys, f"{side} stored no long-term key: {right[side]}"
        assert {key["Authenticated"] for key in keys.values()} == {SC_AUTHENTICATED}, f"{side}: {keys}"
    assert seen["voxkey"]["rc"] == 0, seen["voxkey"]
    assert seen["voxkey"]["stdout"].strip() == seen["host_address"], "voxkey pair prints the bonded host"


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.passkey_pairing")
def test_passkey_mode_refuses_a_host_that_claims_no_display(guest_case_result: dict[str, Any]) -> None:
    """An attacker's host says NoInputNoOutput to get Just Works: voxkey's agent refuses, nothing bonds."""
    downgrade = guest_case_result["downgrade"]
    assert downgrade["pairing_mode"] and downgrade["host_io_cap"]["rc"] == 0, downgrade
    seen = downgrade["round"]
    assert not seen["paired"], f"passkey mode bonded a host without a code: {seen}"
    assert "shown" not in seen, "no code may be involved"
    for side in ("voxkey_store", "host_store"):
        assert not long_term_keys(seen[side]), f"{side}: {seen[side]}"
    assert any("refused pairing without a passkey" in line for line in downgrade["voxkey"]["agent_log"]), downgrade


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.passkey_pairing")
def test_just_works_mode_bonds_without_a_code_unauthenticated(guest_case_result: dict[str, Any]) -> None:
    just_works = guest_case_result["just_works"]
    assert just_works["pairing_mode"], just_works["voxkey"]
    seen = just_works["round"]
    assert seen["paired"] and "shown" not in seen, seen
    for side in ("voxkey_store", "host_store"):
        keys = long_term_keys(seen[side])
        assert keys and {key["Authenticated"] for key in keys.values()} == {SC_UNAUTHENTICATED}, f"{side}: {keys}"
