import errno
import os
import select
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from voxkey.errors import GadgetError, HostUnavailableError, TransportError
from voxkey.hid import LED_CAPS_LOCK, RELEASE_ALL
from voxkey.keymap import Layout, decode, encode
from voxkey.transports.base import Keyboard, LinkDown
from voxkey.transports.usb import KernelLog, UsbHidLink, find_udc_state_file

US = Layout.load("us")


def read_reports(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[i : i + 8] for i in range(0, len(data), 8)]


def test_types_text_into_the_device_file_exactly(tmp_path: Path) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    text = "Hello, world!\n\tDoubled: aa bb 1100 ~~\n" * 50
    with Keyboard(UsbHidLink(device), US) as keyboard:
        keyboard.type(text)
        assert keyboard.pending_text == ""
        assert keyboard.delivered_chars == len(text)
    reports = read_reports(device)
    assert reports == [RELEASE_ALL, *encode(text, US)]  # all keys up as the link starts, then the text
    assert decode(reports, US) == text


def test_waits_for_the_udc_to_be_configured_and_keeps_the_text(tmp_path: Path) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    state = tmp_path / "state"
    state.write_text("suspended\n")
    keyboard = Keyboard(UsbHidLink(device, state), US, host_wait_s=0.3)
    with pytest.raises(HostUnavailableError, match=r"UDC state: suspended.*5 characters kept"):
        keyboard.type("hello")
    assert device.read_bytes() == b""
    assert keyboard.pending_text == "hello"
    state.write_text("configured\n")
    keyboard.type(" world")
    assert decode(read_reports(device), US) == "hello world"


def test_missing_device_waits_then_fails_with_the_text_kept(tmp_path: Path) -> None:
    """The daemon's case: it waits for the gadget, and says it waits for the device, not for a UDC state."""
    keyboard = Keyboard(UsbHidLink(tmp_path / "absent"), US, host_wait_s=0.2)
    with pytest.raises(HostUnavailableError, match=r"absent does not exist") as caught:
        keyboard.type("abc")
    assert "UDC state" not in str(caught.value)
    assert keyboard.pending_text == "abc"


def udc_class_with(tmp_path: Path, *controllers: str) -> Path:
    """A stand-in for /sys/class/udc with these controllers, each saying ``configured``."""
    udc_class = tmp_path / "udc"
    udc_class.mkdir()
    for name in controllers:
        (udc_class / name).mkdir()
        (udc_class / name / "state").write_text("configured\n")
    return udc_class


def test_no_usb_device_controller_fails_at_once_with_what_to_set_up(tmp_path: Path) -> None:
    for udc_class in (udc_class_with(tmp_path), tmp_path / "no-udc-class"):
        with pytest.raises(GadgetError) as caught:
            UsbHidLink.for_gadget(tmp_path / "nonexistent", require=True, udc_class=udc_class)
        message = str(caught.value)
        assert f"no USB device controller (UDC) in {udc_class}" in message
        assert f"no keyboard gadget ({tmp_path / 'nonexistent'} does not exist)" in message
        assert "dtoverlay=dwc2" in message and "voxkey-gadget up" in message


def test_a_controller_without_the_gadget_device_fails_at_once_naming_voxkey_gadget_up(tmp_path: Path) -> None:
    udc_class = udc_class_with(tmp_path, "fe980000.usb")
    with pytest.raises(GadgetError, match=r"no keyboard gadget device .*nonexistent: run 'sudo voxkey-gadget up'"):
        UsbHidLink.for_gadget(tmp_path / "nonexistent", require=True, udc_class=udc_class)


def test_a_named_controller_that_is_not_there_fails_at_once_listing_those_that_are(tmp_path: Path) -> None:
    udc_class = udc_class_with(tmp_path, "fe980000.usb")
    device = tmp_path / "hidg0"
    device.touch()
    with pytest.raises(GadgetError, match=r"no USB device controller named 'dummy_udc.0' .*available: fe980000.usb"):
        UsbHidLink.for_gadget(device, "dummy_udc.0", require=True, udc_class=udc_class)


def test_a_set_up_gadget_is_gated_on_its_controller_and_types(tmp_path: Path) -> None:
    udc_class = udc_class_with(tmp_path, "a.usb", "b.usb")
    device = tmp_path / "hidg0"
    device.touch()
    link = UsbHidLink.for_gadget(device, "b.usb", require=True, udc_class=udc_class)
    assert link.udc_state_file == udc_class / "b.usb" / "state"
    (udc_class / "b.usb" / "state").write_text("suspended\n")
    keyboard = Keyboard(link, US, host_wait_s=0.2)
    with pytest.raises(HostUnavailableError, match="UDC state: suspended"):
        keyboard.type("ok")
    (udc_class / "b.usb" / "state").write_text("configured\n")
    keyboard.type("")
    keyboard.close()
    assert decode(read_reports(device), US) == "ok"


def test_unreadable_device_is_a_permission_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(path: object, flags: int) -> int:  # what open() gives a user outside the device's group
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(TransportError, match=r"no permission to open .*hidg0"):
        Keyboard(UsbHidLink(tmp_path / "hidg0"), US).type("a")


def test_host_led_report_with_caps_lock_keeps_case_right(tmp_path: Path) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    link = UsbHidLink(device)  # writes its start-up release: the file offset is 8 now
    with device.open("ab") as host:
        host.write(bytes([LED_CAPS_LOCK]))  # the host's output report, waiting to be read
    with Keyboard(link, US) as keyboard:
        keyboard.type("Hi")
    data = device.read_bytes()
    assert data[:9] == RELEASE_ALL + bytes([LED_CAPS_LOCK])
    data = data[9:]  # after the LED byte the host wrote
    reports = [data[i : i + 8] for i in range(0, len(data), 8)]
    assert decode(reports, US, caps_lock=True) == "Hi"
    assert reports[0][0] == 0x00 and reports[2][0] == 0x02  # H without Shift, i with Shift


def test_write_errors_meaning_host_gone_become_link_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    link = UsbHidLink(device)
    link.wait_for_host(None)

    def shutdown(fd: int, data: bytes) -> int:
        raise OSError(errno.ESHUTDOWN, os.strerror(errno.ESHUTDOWN))

    monkeypatch.setattr(os, "write", shutdown)
    with pytest.raises(LinkDown, match="endpoint shutdown"):
        link.send(bytes(8), None)


def configured_gadget(tmp_path: Path) -> tuple[Path, Path, UsbHidLink]:
    """A device file, a UDC state file saying ``configured``, and a link that has found its host."""
    device = tmp_path / "hidg0"
    device.touch()
    state = tmp_path / "state"
    state.write_text("configured\n")
    link = UsbHidLink(device, state, settle_s=0)
    link.wait_for_host(None)
    return device, state, link


def test_udc_state_file_is_found_for_the_only_controller(tmp_path: Path) -> None:
    (tmp_path / "dummy_udc.0").mkdir()
    assert find_udc_state_file(udc_class=tmp_path) == tmp_path / "dummy_udc.0" / "state"
    assert find_udc_state_file("fe980000.usb", tmp_path) == tmp_path / "fe980000.usb" / "state"
    assert find_udc_state_file(udc_class=tmp_path / "none") is None


def test_after_the_host_comes_back_keys_up_reports_go_first_then_typing_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    real_write = os.write
    calls = 0

    def unplug_once(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 4:  # the press of "b" (1: the start-up release): the host is gone
            raise OSError(errno.ESHUTDOWN, os.strerror(errno.ESHUTDOWN))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", unplug_once)
    with Keyboard(UsbHidLink(device, settle_s=0), US) as keyboard:
        keyboard.type("abc")
    reports = read_reports(device)
    assert reports[:4] == [RELEASE_ALL, *encode("a", US), bytes(8)]  # start-up release, "a", the settle report
    assert decode(reports, US) == "abc"


def test_a_host_that_re_enumerates_is_a_link_drop_and_typing_resumes_after_it(tmp_path: Path) -> None:
    device, state, link = configured_gadget(tmp_path)
    state.write_text("default\n")  # unplugged and plugged again: the queued report was cancelled
    with pytest.raises(LinkDown, match="re-enumerates"):
        link.send(bytes(8), None)
    state.write_text("configured\n")
    with Keyboard(link, US) as keyboard:
        keyboard.type("ok")
    reports = read_reports(device)
    assert reports[0] == bytes(8) and decode(reports, US) == "ok"  # the settle report, then the text


class KernelLogPipe:
    """A FIFO in place of /dev/kmsg: the test writes the records the kernel would log."""

    def __init__(self, tmp_path: Path) -> None:
        path = tmp_path / "kmsg"
        os.mkfifo(path)
        self.log = KernelLog(path)
        self._writer = os.open(path, os.O_WRONLY)

    def record(self, message: str) -> None:
        os.write(self._writer, f"3,812,{len(message)},-;{message}\n".encode())

    def close(self) -> None:
        os.close(self._writer)
        self.log.close()


@pytest.fixture
def kernel_log(tmp_path: Path) -> Iterator[KernelLogPipe]:
    pipe = KernelLogPipe(tmp_path)
    yield pipe
    pipe.close()


CANCELLED = "configfs-gadget gadget: End Point Request ERROR: -108"


def test_kernel_log_tells_only_cancellations_logged_since_the_last_look(kernel_log: KernelLogPipe) -> None:
    assert not kernel_log.log.report_cancelled()
    kernel_log.record("usb 1-1: new high-speed USB device number 3 using dummy_hcd")
    assert not kernel_log.log.report_cancelled()
    kernel_log.record(CANCELLED)
    assert kernel_log.log.report_cancelled()
    assert not kernel_log.log.report_cancelled()


def unplug_at_write(monkeypatch: pytest.MonkeyPatch, failing_write: int, before_failing: Callable[[], None]) -> None:
    real_write = os.write
    calls = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == failing_write:
            before_failing()
            raise OSError(errno.ESHUTDOWN, os.strerror(errno.ESHUTDOWN))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("cancelled", [False, True])
def test_the_kernel_log_decides_whether_the_press_before_an_unplug_arrived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_log: KernelLogPipe, cancelled: bool
) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    record = kernel_log.record
    unplug_at_write(monkeypatch, 5, lambda: record(CANCELLED) if cancelled else None)  # 5: the release of "b"
    with Keyboard(UsbHidLink(device, settle_s=0, kernel_log=kernel_log.log), US) as keyboard:
        keyboard.type("abc")
    b_press = encode("b", US)[0]
    retyped = encode("bc" if cancelled else "c", US)
    assert read_reports(device) == [RELEASE_ALL, *encode("a", US), b_press, bytes(8), *retyped]  # 2nd 0s: settling


def test_a_cancellation_while_the_udc_looks_configured_is_a_link_drop(
    tmp_path: Path, kernel_log: KernelLogPipe
) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    link = UsbHidLink(device, settle_s=0, kernel_log=kernel_log.log)
    link.wait_for_host(None)
    link.send(encode("a", US)[0], None)
    kernel_log.record(CANCELLED)  # the host re-enumerated faster than the UDC state was read
    with pytest.raises(LinkDown, match="cancelled") as raised:
        link.send(bytes(8), None)
    assert not raised.value.previous_delivered


@pytest.mark.parametrize(("udc_state", "completion_seen"), [("configured", True), ("not attached", False)])
def test_without_the_kernel_log_a_completion_seen_before_the_failure_counts_as_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, udc_state: str, completion_seen: bool
) -> None:
    _, state, link = configured_gadget(tmp_path)
    link.send(encode("a", US)[0], None)
    state.write_text(f"{udc_state}\n")
    unplug_at_write(monkeypatch, 1, lambda: None)
    if not completion_seen:  # f_hid holds POLLOUT back once the endpoint is disabled
        monkeypatch.setattr(select, "poll", lambda: NeverWritable())
    with pytest.raises(LinkDown) as raised:
        link.send(bytes(8), None)
    assert raised.value.previous_delivered == completion_seen


class NeverWritable:
    def register(self, fd: int, events: int) -> None:
        return None

    def poll(self, timeout_ms: float) -> list[tuple[int, int]]:
        return []


def test_a_link_releases_every_key_as_it_starts_before_any_text(tmp_path: Path) -> None:
    """A voxkey killed mid-key (SIGKILL) left that key held on the host: the next link's first report lets it go."""
    device = tmp_path / "hidg0"
    device.touch()
    UsbHidLink(device)
    assert read_reports(device) == [RELEASE_ALL]


def test_a_link_started_while_the_host_was_away_releases_every_key_as_it_first_reaches_it(tmp_path: Path) -> None:
    """Without it a stuck "a" and a typed "a" merge into one press on the host: a character lost."""
    device = tmp_path / "hidg0"
    device.touch()
    state = tmp_path / "state"
    state.write_text("suspended\n")
    link = UsbHidLink(device, state, settle_s=0)
    assert device.read_bytes() == b""
    state.write_text("configured\n")
    with Keyboard(link, US) as keyboard:
        keyboard.type("a")
    assert read_reports(device) == [RELEASE_ALL, *encode("a", US)]


def test_closing_after_a_press_releases_it_once(tmp_path: Path) -> None:
    """The ``finally`` of ``voxkey type`` (Ctrl-C, SIGTERM, an error mid-key) must leave no key held."""
    device = tmp_path / "hidg0"
    device.touch()
    link = UsbHidLink(device)
    link.send(encode("a", US)[0], None)
    link.release_all()
    link.release_all()  # already released: nothing more
    link.close()
    assert read_reports(device) == [RELEASE_ALL, encode("a", US)[0], RELEASE_ALL]
