"""Fuzz text → keymap → key reports for every layout, through the ``Keyboard`` the daemon types with.

Whatever Unicode whisper (or a replacement in the config) produces, on every layout and under every
``unsupported_characters`` policy, with the host's Caps Lock on or off:

- raw text is typed or refused with ``UnsupportedCharacterError`` before any report is sent;
- text after ``prepare_text`` is always typed, and never raises;
- every report presses at most one key, and every press is followed by an all-keys-up report, so no
  key can stay down on the host (auto-repeat) and the stream ends with everything released;
- no report holds Ctrl, Alt or Super: only Shift and AltGr, as a layout needs for a character. The one
  exception is the documented Ctrl+Shift+U that starts the Linux Unicode entry (policy ``linux``);
- with Caps Lock off the host types exactly the prepared text.

Budget (CI): 300 + 150 examples over 17 layouts × 3 policies, about 10 s on the 2-core dev machine.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from voxkey.errors import UnsupportedCharacterError
from voxkey.hid import LED_CAPS_LOCK, MODIFIER_BITS, RELEASE_ALL, REPORT_LENGTH
from voxkey.keymap import Layout, available_layouts, decode
from voxkey.transports.base import Keyboard
from voxkey.typing_policy import UnsupportedPolicy, prepare_text, typing_layout

from . import budget

LAYOUTS = available_layouts()
CHARACTER_MODIFIERS = MODIFIER_BITS["shift"] | MODIFIER_BITS["rshift"] | MODIFIER_BITS["altgr"]
UNICODE_ENTRY = MODIFIER_BITS["ctrl"] | MODIFIER_BITS["shift"]

# Whisper's output is mostly letters and punctuation; the fuzzer adds every other plane, controls,
# surrogate-free astral characters, combining marks and the typographic set typing_policy rewrites.
unicode_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("aé€ß\n\t\b\r ’“”…—\u00a0\u200b\ufeff\u0301😀北")),
    ),
    max_size=40,
)


class HostLink:
    """A host that takes every report; its Caps Lock LED is whatever the test says."""

    name = "fuzz"

    def __init__(self, caps_lock: bool) -> None:
        self.reports: list[bytes] = []
        self.leds = LED_CAPS_LOCK if caps_lock else 0

    def wait_for_host(self, deadline: float | None) -> None:
        return None

    def send(self, report: bytes, deadline: float | None) -> None:
        self.reports.append(report)

    def led_state(self) -> int:
        return self.leds

    def release_all(self) -> None:
        self.reports.append(RELEASE_ALL)

    def close(self) -> None:
        return None


def assert_no_stuck_key_or_chord(reports: list[bytes], unicode_entry: bool) -> None:
    for index, report in enumerate(reports):
        assert len(report) == REPORT_LENGTH
        if report == RELEASE_ALL:
            continue
        keys = [usage for usage in report[2:] if usage]
        assert len(keys) == 1, f"report {index} presses {keys}: a chord"
        allowed = CHARACTER_MODIFIERS | (UNICODE_ENTRY if unicode_entry else 0)
        assert report[0] & ~allowed == 0, f"report {index} holds modifiers {report[0]:#04x}"
        if report[0] & MODIFIER_BITS["ctrl"]:
            assert report[0] == UNICODE_ENTRY, f"report {index}: Ctrl only ever as Ctrl+Shift+U"
        assert index + 1 < len(reports) and reports[index + 1] == RELEASE_ALL, f"report {index} is never released"


@budget(300)
@given(
    text=unicode_text,
    name=st.sampled_from(LAYOUTS),
    policy=st.sampled_from(list(UnsupportedPolicy)),
    caps_lock=st.booleans(),
)
@example(text="\b\r\n\t", name="fr", policy=UnsupportedPolicy.LINUX, caps_lock=True)
@example(text="北京 😀 ß", name="us", policy=UnsupportedPolicy.LINUX, caps_lock=False)
def test_prepared_text_types_without_stuck_keys_or_chords(
    text: str, name: str, policy: UnsupportedPolicy, caps_lock: bool
) -> None:
    layout = Layout.load(name)
    prepared = prepare_text(text, layout, policy)
    target = typing_layout(layout, policy)
    host = HostLink(caps_lock)
    keyboard = Keyboard(host, target)
    keyboard.type(prepared)
    assert keyboard.pending_text == ""
    assert_no_stuck_key_or_chord(host.reports, unicode_entry=policy is UnsupportedPolicy.LINUX)
    if not caps_lock:
        assert decode(host.reports, target) == prepared


@budget(150)
@given(text=unicode_text, name=st.sampled_from(LAYOUTS), caps_lock=st.booleans())
def test_raw_text_is_typed_or_refused_before_any_report(text: str, name: str, caps_lock: bool) -> None:
    layout = Layout.load(name)
    host = HostLink(caps_lock)
    keyboard = Keyboard(host, layout)
    try:
        keyboard.type(text)
    except UnsupportedCharacterError as exc:
        assert exc.char in text and not layout.can_type(exc.char)
        assert host.reports == [] and keyboard.pending_text == ""
        return
    assert_no_stuck_key_or_chord(host.reports, unicode_entry=False)


def test_the_checker_catches_a_held_key_and_a_chord() -> None:
    """The property above must be able to fail: a press without its release, Ctrl+A, two keys at once."""
    press = bytes([0, 0, 4, 0, 0, 0, 0, 0])
    for bad in (
        [press],
        [bytes([1, 0, 4, 0, 0, 0, 0, 0]), RELEASE_ALL],
        [bytes([0, 0, 4, 5, 0, 0, 0, 0]), RELEASE_ALL],
    ):
        try:
            assert_no_stuck_key_or_chord(bad, unicode_entry=False)
        except AssertionError:
            continue
        raise AssertionError(f"{bad} passed")
