"""The Bluetooth LE keyboard (issue 5) on a real kernel and a real BlueZ, judged from what the host saw.

Guest side: ``tests/kernel/cases/bluetooth.py`` (btvirt's two LE controllers,
voxkey on hci0, hci1 as the host). The hog cases decode the key events of the
uhid keyboard BlueZ made for voxkey as a us-layout Linux host would; the bleak
case decodes the input Report values a bleak central received.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.kernel.cases.bluetooth import BLEAK_TEXT, FORGOTTEN_TEXT, typing_text
from tests.kernel.evdev_keys import (
    HostText,
    assert_ejected_once_after_the_text,
    decode_events,
    first_difference,
    without_eject,
)
from voxkey.keymap import Layout, decode

PRINTABLE_ASCII = {chr(code) for code in range(0x20, 0x7F)}
HOG_MULTIPLE_NOTIFICATIONS_FIXED = (5, 67)
LE_DISCOVERABLE_FLAGS = 0x03  # Flags AD: LE Limited (0x01) and General (0x02) Discoverable Mode


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def assert_hog_host_typed_exactly(observations: dict[str, Any]) -> HostText:
    """The uhid keyboard hog created typed exactly ``observations["text"]``, and voxkey says so too."""
    bluetoothd = observations["bluetoothd"]
    assert observations["voxkey_ready"], f"voxkey never registered with BlueZ: {observations['voxkey']}"
    assert observations["input_device_appeared"], (
        f"BlueZ's hog made no input device for voxkey; host device {observations['host_device']}"
    )
    voxkey = observations["voxkey"]
    assert voxkey["rc"] == 0, f"voxkey type --transport bluetooth failed: {voxkey}"
    host = decode_events(without_eject(observations["events"]), "us")
    if not host.text and version_tuple(bluetoothd["version"]) < HOG_MULTIPLE_NOTIFICATIONS_FIXED:
        pytest.fail(
            f"the guest ran bluetoothd {bluetoothd['version']} ({bluetoothd['binary']}): its hog plugin ignores "
            "ATT Multiple Handle Value Notifications, which BlueZ's server sends to every BlueZ client "
            "(bluez issue #71, fixed in 5.67). Build the test bluetoothd: hardware/bluetooth.md, 'Testing'.",
            pytrace=False,
        )
    assert not host.dropped, f"the recorder lost evdev events ({host.dropped} SYN_DROPPED): this run proves nothing"
    assert not host.unknown, f"host got keys that type nothing on a us host: {host.unknown[:10]}"
    assert not host.repeats, f"host auto-repeated {len(host.repeats)} characters: {host.repeats[:10]}"
    assert not host.held_at_end, f"keys still held on the host at the end: {host.held_at_end}"
    if host.text != observations["text"]:
        pytest.fail(
            first_difference(observations["text"], host.text)
            + f"\nvoxkey stats {voxkey['stats']}\nvoxkey log: {voxkey['log_tail'][-1500:]}",
            pytrace=False,
        )
    assert voxkey["stats"]["delivered_chars"] == len(observations["text"]), voxkey["stats"]
    return host


def test_typing_text_has_every_printable_ascii_character_and_is_long_enough() -> None:
    text = typing_text()
    assert len(text) >= 2000
    assert set(text) >= PRINTABLE_ASCII
    assert set(BLEAK_TEXT) >= PRINTABLE_ASCII


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.pair_and_type")
def test_host_pairs_in_pairing_mode_and_2000_printable_ascii_characters_arrive_exactly(
    guest_case_result: dict[str, Any],
) -> None:
    seen = guest_case_result
    pairing = seen["pairing"]
    assert pairing["discovered"], "voxkey was not discoverable in pairing mode"
    assert pairing["discovered"]["Name"] == "voxkey-test"
    assert pairing["discovered"]["Appearance"] == 0x03C1, "must advertise the keyboard appearance"
    assert "00001812-0000-1000-8000-00805f9b34fb" in pairing["discovered"]["UUIDs"], "must advertise HID service"
    assert pairing["paired"], pairing
    assert seen["host_device"]["Paired"] and seen["host_device"]["Bonded"], seen["host_device"]
    assert seen["text"] == typing_text() and len(seen["text"]) >= 2000
    assert_hog_host_typed_exactly(seen)


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.pair_and_type")
def test_eject_after_the_text_reaches_the_host_as_the_eject_key_once(guest_case_result: dict[str, Any]) -> None:
    """Linux's hid-input puts the consumer usage Eject on the same input device as the keys."""
    assert_ejected_once_after_the_text(guest_case_result["events"])


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.drop_mid_text")
def test_link_dropped_mid_text_and_restored_still_types_exactly(guest_case_result: dict[str, Any]) -> None:
    assert_dropped_and_restored_exactly(guest_case_result)


def assert_resumed_exactly(seen: dict[str, Any], fault: str) -> None:
    """``fault`` came while voxkey typed, the host came back, and it got the text exactly."""
    assert seen["auto_reconnected"] or seen["reconnect_error"] is None, seen.get("reconnect_error")
    assert seen["typing_still_running_at_drop"], f"the {fault} must happen while voxkey is still typing"
    assert 0 < seen["dropped_at_presses"] < len(seen["text"]), seen["dropped_at_presses"]
    assert_hog_host_typed_exactly(seen)


def assert_dropped_and_restored_exactly(seen: dict[str, Any]) -> None:
    """The link dropped while voxkey typed, came back, and the host got the text exactly, replay included."""
    assert seen["disconnect"]["rc"] == 0 and seen["disconnected"], f"the link did not drop: {seen['disconnect']}"
    assert_resumed_exactly(seen, "drop")
    assert seen["voxkey"]["stats"]["replayed_reports"] > 0, "the drop must catch reports in flight"


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.old_bluez_host_drop_mid_text")
def test_a_bluez_5_66_host_gets_the_text_exactly_across_a_link_drop_with_single_notifications(
    guest_case_result: dict[str, Any],
) -> None:
    """The replay after a drop goes out as single notifications too (issue 12's table: 5.66 x drop mid-text)."""
    seen = guest_case_result
    assert seen["bluetoothd"]["version"] == "5.66", seen["bluetoothd"]
    assert_dropped_and_restored_exactly(seen)
    assert seen["voxkey"]["stats"]["notification_pdus"]["multiple"] == 0, seen["voxkey"]["stats"]


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.host_forgets_the_bond")
def test_a_host_that_forgot_voxkey_gets_nothing_the_text_comes_back_and_pairing_again_types(
    guest_case_result: dict[str, Any],
) -> None:
    """Issue 14's "host forgets the bond": nothing typed where the user did not mean, nothing lost."""
    seen = guest_case_result
    assert_hog_host_typed_exactly(seen["before"])
    assert seen["host_remove"] is None, seen["host_remove"]
    assert not seen["host_device_after_remove"].get("Paired"), seen["host_device_after_remove"]
    forgotten = seen["forgotten"]
    assert forgotten["rc"] != 0, f"voxkey type must fail when no host can take the text: {forgotten}"
    assert forgotten["stdout"] == FORGOTTEN_TEXT, forgotten  # handed back whole: nothing lost
    assert forgotten["stats"]["delivered_chars"] == 0, forgotten["stats"]
    assert not seen["host_device_while_forgotten"].get("Connected"), seen["host_device_while_forgotten"]
    after = seen["after"]
    assert after["pairing"]["paired"], after["pairing"]
    assert_hog_host_typed_exactly(after)


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.power_cycle_mid_text")
def test_adapter_powered_off_and_on_mid_text_still_types_exactly(guest_case_result: dict[str, Any]) -> None:
    seen = guest_case_result
    assert seen["power_off"]["powered_as_asked"] and seen["disconnected"], f"no power-off drop: {seen['power_off']}"
    assert seen["power_on"]["powered_as_asked"], f"the adapter did not come back: {seen['power_on']}"
    assert_resumed_exactly(seen, "power-off")


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.bluetoothd_restart_mid_text")
def test_bluetoothd_restarted_mid_text_registers_again_and_the_text_arrives_exactly(
    guest_case_result: dict[str, Any],
) -> None:
    """Issue 14's fault row "bluetoothd restart mid-text": nothing lost, nothing doubled, no pairing again."""
    seen = guest_case_result
    assert seen["restarted"] and seen["disconnected"], "bluetoothd must restart and take the link with it"
    assert seen["auto_reconnected"], f"the bonded host did not come back: {seen.get('reconnect_error')}"
    assert seen["registered_again"], "voxkey did not see bluetoothd leave and come back"
    assert_resumed_exactly(seen, "restart")


PINNED_HID_HANDLES = {
    "5.82": ["service 0100 1812", "chrc 0101 2a4a", "chrc 0103 2a4b", "chrc 0105 2a4e", "chrc 0107 2a4d"],
    "5.66": ["service 0100 1812", "chrc 0102 2a4a", "chrc 0104 2a4b", "chrc 0106 2a4e", "chrc 0108 2a4d"],
}
"""voxkey's pinned HID handles as bluetoothd logs them: 5.82 names a characteristic by its declaration,
5.66 by its value (the declaration + 1). The same attributes at the same handles."""

RESTART_CASES = pytest.mark.parametrize(
    "host_bluez",
    [
        pytest.param("5.82", marks=pytest.mark.guest_case("bluetooth.reconnect_after_restart"), id="5.82"),
        pytest.param(
            "5.66",
            marks=pytest.mark.guest_case("bluetooth.old_bluez_host_reconnect_after_restart"),
            id="5.66-single-notifications",
        ),
    ],
)
"""Issue 12's table, "restart reconnect without rediscovery", for both host BlueZ versions."""


@pytest.mark.kernel
@RESTART_CASES
def test_bonded_host_reconnects_after_bluetoothd_and_voxkey_restart_without_pairing(
    guest_case_result: dict[str, Any], host_bluez: str
) -> None:
    rounds = guest_case_result["rounds"]
    assert len(rounds) == 3, rounds
    for seen in rounds:
        assert seen["bluetoothd"]["version"] == host_bluez, seen["bluetoothd"]
        assert "pairing" not in seen, f"round {seen['round']} paired again"
        assert seen["auto_reconnected"], f"round {seen['round']}: the bonded host did not reconnect within 45 s"
        assert_hog_host_typed_exactly(seen)


@pytest.mark.kernel
@RESTART_CASES
def test_handles_stay_the_same_across_restarts_so_the_host_needs_no_rediscovery(
    guest_case_result: dict[str, Any], host_bluez: str
) -> None:
    rounds = guest_case_result["rounds"]
    assert {seen["bluetoothd"]["version"] for seen in rounds} == {host_bluez}
    handles = [seen["server_handles"] for seen in rounds]
    pinned = PINNED_HID_HANDLES[host_bluez]
    assert handles[0][: len(pinned)] == pinned, handles[0]
    assert all(round_handles == handles[0] for round_handles in handles), handles
    for seen in rounds:
        assert not seen["host_cache_misses"], (
            f"round {seen['round']}: host read stale handles {seen['host_cache_misses']}"
        )
        assert seen["discovery_skipped"] >= 1 and seen["hash_mismatches"] == 0, (
            f"round {seen['round']}: the host discovered voxkey's services again "
            f"({seen['hash_mismatches']} Database Hash mismatches, {seen['discovery_skipped']} matches)"
        )


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.bleak_central")
def test_bleak_central_subscribes_to_the_input_report_and_decodes_the_text(guest_case_result: dict[str, Any]) -> None:
    """bleak gets the text. If bookworm's bluetoothd crashed under bleak's link (``_bleak_collect_surviving_a_crash``),
    voxkey must have registered again with the restarted one by itself, and bleak's second try is judged the same."""
    seen = guest_case_result
    for crash in seen["bluetoothd_crashes"]:
        assert crash["voxkey_registered_again"], f"voxkey did not come back after bluetoothd crashed: {crash}"
    bleak = seen["bleak"]
    assert "error" not in bleak, bleak
    references = set(bleak["report_references"].values())
    assert {"0101", "0102", "0201"} <= references, f"Report References (id, type): {references}"
    assert "notify" in bleak["subscribed_properties"]
    reports = [bytes.fromhex(value) for value in bleak["values"]]
    assert reports and all(len(report) == 8 for report in reports), "input reports carry 8 bytes, no report ID"
    assert decode(reports, Layout.load("us")) == seen["text"] == BLEAK_TEXT
    assert seen["voxkey"]["rc"] == 0, seen["voxkey"]


@pytest.mark.kernel
@pytest.mark.parametrize(
    "binary",
    [
        pytest.param("/usr/libexec/", marks=pytest.mark.guest_case("bluetooth.stranger_refused"), id="packaged"),
        pytest.param(
            "/single-notifications/",
            marks=pytest.mark.guest_case("bluetooth.old_bluez_host_stranger_refused"),
            id="single-notifications",
        ),
    ],
)
def test_unbonded_host_cannot_read_subscribe_or_pair_outside_pairing_mode(
    guest_case_result: dict[str, Any], binary: str
) -> None:
    """voxkey on bookworm's 5.66 as packaged and as install.sh rebuilds it; the stranger is a 5.66 central."""
    seen = guest_case_result
    assert binary in seen["bluetoothd"]["binary"] and seen["bluetoothd"]["version"] == "5.66", seen["bluetoothd"]
    attempts = seen["attempts"]
    assert seen["voxkey_forget"]["rc"] == 0, seen["voxkey_forget"]
    assert seen["host_remove"] is None, seen["host_remove"]
    assert seen["voxkey_ready"], seen["voxkey"]
    if attempts["listed_by_discovery"]:  # BlueZ lists every advertiser; hosts offer only discoverable ones
        flags = bytes.fromhex(attempts["advertising_flags"] or "00")[0]
        assert not flags & LE_DISCOVERABLE_FLAGS, f"voxkey advertised as discoverable (flags {flags:#04x})"
    tries = attempts["tries"]
    assert any(attempt["connect"] == "ok" for attempt in tries), f"the stranger never reached voxkey: {tries}"
    assert any("read" in attempt for attempt in tries), f"the stranger never got to read: {tries}"
    assert any("subscribe" in attempt for attempt in tries), f"the stranger never got to subscribe: {tries}"
    for attempt in tries:
        assert attempt.get("read") != "allowed", attempt
        assert attempt.get("subscribe") != "allowed", attempt
    assert attempts["pair"] != "paired", attempts
    assert not attempts["device_after"]["Paired"], attempts["device_after"]
    stats = seen["voxkey"]["stats"] or {}
    assert stats.get("delivered_chars", 0) == 0 and not stats.get("acknowledged_reports"), stats


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.old_bluez_host_single_notifications")
def test_a_bluez_5_66_host_types_exactly_when_the_pis_bluetoothd_sends_single_notifications(
    guest_case_result: dict[str, Any],
) -> None:
    """install.sh --bluetoothd-for-old-hosts: the Pi's own BlueZ with single-notifications.patch (issue 12)."""
    seen = guest_case_result
    assert seen["bluetoothd"]["version"] == "5.66", seen["bluetoothd"]
    assert "patches: " in seen["built_from"] and seen["built_from"].split("patches: ")[1], seen["built_from"]
    assert seen["host_modalias_seen_by_voxkey"] == "usb:v1D6Bp0246d0542", seen["host_modalias_seen_by_voxkey"]
    assert_hog_host_typed_exactly(seen)
    pdus = seen["voxkey"]["stats"]["notification_pdus"]
    assert pdus["multiple"] == 0 and pdus["single"] >= 2 * len(seen["text"]), pdus  # a press and a release each


@pytest.mark.kernel
@pytest.mark.guest_case("bluetooth.old_bluez_host")
def test_a_bluez_5_66_host_is_refused_loudly_and_nothing_is_reported_delivered(
    guest_case_result: dict[str, Any],
) -> None:
    """Debian 12's hog drops the Multiple Handle Value Notifications every BlueZ server sends it (hostcompat)."""
    seen = guest_case_result
    assert seen["bluetoothd"]["version"] == "5.66", seen["bluetoothd"]
    assert seen["pairing"]["paired"], seen["pairing"]
    assert seen["host_modalias_seen_by_voxkey"] == "usb:v1D6Bp0246d0542", seen["host_modalias_seen_by_voxkey"]
    voxkey = seen["voxkey"]
    assert voxkey["rc"] != 0, f"voxkey type must fail for a host that types nothing: {voxkey}"
    assert "runs BlueZ 5.66" in voxkey["log_tail"] and "5.67" in voxkey["log_tail"], voxkey["log_tail"]
    assert voxkey["stats"]["delivered_chars"] == 0, voxkey["stats"]
    assert "--bluetoothd-for-old-hosts" in voxkey["log_tail"], voxkey["log_tail"]
