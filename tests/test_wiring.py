"""``voxkey run``'s wiring: the links the config asks for, with their pairing control said explicitly."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from voxkey.config import Config, OutputSettings, UsbSettings
from voxkey.transports.terminal import TerminalLink
from voxkey.transports.usb import UsbHidLink
from voxkey.wiring import build_links


def test_the_terminal_transport_prints_to_the_given_stream_and_has_no_pairing() -> None:
    stream = io.StringIO()
    links = build_links(dataclasses.replace(Config(), output=OutputSettings(transport="terminal")), stream)
    assert [type(link) for link in links.links] == [TerminalLink] and links.pairing is None
    link = links.links[0]
    assert isinstance(link, TerminalLink) and link.stream is stream


def test_usb_opens_the_configured_gadget_device_and_has_no_pairing(tmp_path: Path) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    config = dataclasses.replace(Config(), output=OutputSettings(transport="usb"), usb=UsbSettings(device=device))
    links = build_links(config)
    try:
        assert [type(link) for link in links.links] == [UsbHidLink] and links.pairing is None
        assert links.links[0].device == device  # type: ignore[attr-defined]
    finally:
        for link in links.links:
            link.close()
