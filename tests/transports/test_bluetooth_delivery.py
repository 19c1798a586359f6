"""Bluetooth delivery accounting end to end, from a recorded HCI monitor capture, without a radio.

``data/bluetooth-drop-mid-text.btsnoop.gz`` is btmon's recording of voxkey's
controller (index 0) while ``voxkey type`` sent 463 characters to a BlueZ host
in the kernel guest and its radio was cut (rfkill) after about 60 of them, then
came back (``tests/kernel/cases/hci_capture.py``). The host typed the text
exactly; voxkey counted 926 acknowledged reports and replayed 8. Here every
recorded frame goes through ``feed`` → ``DeliveryLedger`` → ``ReportPacer`` as
in ``BluetoothLink``; ``LinkModel`` plays the link's part for the reports that
reached the controller (each is outstanding until acknowledged). Every report
of the text must then be accounted for exactly once: acknowledged in order, or
lost at the cut and waiting, in order, to be written again.

What the capture shows about the cut: the controller had two ACL packets
(8 reports) without a completion when rfkill closed it; the ledger reports
exactly those as lost. The live voxkey, whose monitor opened after btmon's,
replayed 8 other reports (ones still queued in BlueZ, never seen by the
controller) and the host still typed the text exactly.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voxkey.keymap import Layout, encode
from voxkey.transports.bluetooth.delivery import MONITOR_ACL_TX, DeliveryLedger, feed
from voxkey.transports.bluetooth.link import ReportPacer

DATA = Path(__file__).parent / "data"
CAPTURE = DATA / "bluetooth-drop-mid-text.btsnoop.gz"
RUN = json.loads((DATA / "bluetooth-drop-mid-text.json").read_text(encoding="utf-8"))
US = Layout.load("us")
BTSNOOP_MONITOR = 2001
"""btsnoop datalink type of btmon's monitor format: a record's flags are (controller index << 16) | opcode."""


def monitor_records(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(controller index, monitor opcode, payload) of each record of a btsnoop file written by ``btmon -w``."""
    raw = gzip.decompress(path.read_bytes())
    magic, version, datalink = raw[:8], *struct.unpack(">II", raw[8:16])
    assert (magic, version, datalink) == (b"btsnoop\0", 1, BTSNOOP_MONITOR)
    position = 16
    while position < len(raw):
        _, included, flags, _, _ = struct.unpack_from(">IIIIq", raw, position)
        position += 24
        yield flags >> 16, flags & 0xFFFF, raw[position : position + included]
        position += included


@dataclass
class LinkModel:
    """What ``BluetoothLink`` does around the pacer for the reports that reached the controller."""

    pacer: ReportPacer
    acknowledged: list[bytes] = field(default_factory=list)
    lost: list[tuple[str | None, list[bytes]]] = field(default_factory=list)

    def written(self, value: bytes) -> None:
        with self.pacer.condition:
            self.pacer.outstanding.append(value)

    def on_delivered(self, address: str | None, value: bytes) -> None:
        before = self.pacer.delivered_reports
        self.pacer.delivered(address, value)
        if self.pacer.delivered_reports > before:
            self.acknowledged.append(value)

    def on_lost(self, address: str | None, values: list[bytes]) -> None:
        self.lost.append((address, values))
        self.pacer.lost(address)


def replay(
    records: Iterator[tuple[int, int, bytes]], host_address: str = RUN["host_address"]
) -> tuple[LinkModel, DeliveryLedger]:
    pacer = ReportPacer(window=64)
    pacer.host_address = host_address
    link = LinkModel(pacer)
    ledger = DeliveryLedger(link.on_delivered, link.on_lost)
    for index, opcode, payload in records:
        if index != 0:
            continue
        feed(ledger, opcode, payload)
        if opcode == MONITOR_ACL_TX:
            handle = struct.unpack_from("<H", payload)[0] & 0x0FFF
            for value in ledger.in_flight[handle][-1].notifications:  # what this packet carries, as parsed
                link.written(value)
    return link, ledger


@pytest.fixture(scope="module")
def replayed() -> tuple[LinkModel, DeliveryLedger]:
    return replay(monitor_records(CAPTURE))


def lost_at_the_cut(link: LinkModel) -> list[bytes]:
    losses = [values for _, values in link.lost if values]
    assert len(losses) == 1, f"one cut, one loss: {link.lost}"
    return losses[0]


def test_every_report_of_the_text_is_acknowledged_or_lost_exactly_once_in_order(
    replayed: tuple[LinkModel, DeliveryLedger],
) -> None:
    link, _ = replayed
    reports = encode(RUN["text"], US)
    lost = lost_at_the_cut(link)
    cut = next(i for i in range(len(reports)) if reports[i : i + len(lost)] == lost)
    assert 0 < cut < len(reports) - len(lost), "the cut came mid-text"
    assert link.acknowledged[:cut] == reports[:cut], "before the cut: acknowledged in the order written"
    assert link.acknowledged[cut:] == reports[cut + len(lost) :], "after it: the rest, the lost ones not among them"
    assert len(link.acknowledged) + len(lost) == len(reports) == RUN["voxkey_stats"]["acknowledged_reports"]


def test_the_cut_loses_the_reports_of_the_packets_never_completed_and_queues_them_for_replay(
    replayed: tuple[LinkModel, DeliveryLedger],
) -> None:
    link, ledger = replayed
    address, lost = next((a, v) for a, v in link.lost if v)
    assert address == RUN["host_address"]
    assert len(lost) == RUN["voxkey_stats"]["replayed_reports"] == 8
    assert list(link.pacer.replay) == lost, "the lost reports wait, in order, to be written first"
    assert not link.pacer.outstanding, "everything that reached the controller after the cut was acknowledged"
    assert all(not queue for queue in ledger.in_flight.values())


def test_the_pacer_counts_only_its_host_s_acknowledgements(replayed: tuple[LinkModel, DeliveryLedger]) -> None:
    link, _ = replayed
    assert link.pacer.delivered_reports == len(link.acknowledged) == 2 * len(RUN["text"]) - 8
    stranger = replay(monitor_records(CAPTURE), host_address="00:11:22:33:44:55")[0]
    assert stranger.pacer.delivered_reports == 0 and stranger.acknowledged == []
