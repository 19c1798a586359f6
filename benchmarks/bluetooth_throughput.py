"""Characters per second over the Bluetooth LE keyboard link, and the real-world ceiling.

Measured: boots the virtme-ng guest and runs ``bluetooth.pair_and_type`` (voxkey
on btvirt's hci0, BlueZ's hog on hci1 as the host), then reports
- voxkey's own figure: characters delivered / seconds from typing start to the
  last acknowledged report (``--stats`` of ``voxkey type --transport bluetooth``;
  the wait for the host to pair is included), and
- the host's figure: key presses between the first and last key event the
  host's uhid keyboard produced.
btvirt has no radio timing (packets cross instantly), so this measures the
software path: voxkey → D-Bus → bluetoothd → kernel → HCI, acknowledgement back
through the HCI monitor, all under QEMU's CPU emulation.

Ceiling: a character is two reports (press, release). Over the air at most
``packets_per_event`` notifications fit in one connection event, and voxkey
keeps ``window`` unacknowledged, so the ceiling is
``min(packets_per_event, window / ack_events) / interval / 2``.

Usage: ``python benchmarks/bluetooth_throughput.py [--results results.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# (platform, connection interval ms, notifications per connection event) — typical values, see hardware/bluetooth.md
PLATFORMS = (
    ("iOS / iPadOS (HID: 11.25-15 ms, ~4 packets/event)", 15.0, 4),
    ("iOS / iPadOS best case", 11.25, 6),
    ("Android default (30-50 ms, 4-6 packets/event)", 45.0, 4),
    ("Android if asked for 7.5 ms (voxkey does not ask yet)", 7.5, 4),
    ("Windows 10/11 HOGP (7.5-15 ms, 4+ packets/event)", 15.0, 4),
    ("Windows best case", 7.5, 6),
)
REPORTS_PER_CHAR = 2
EV_KEY = 1
SHIFT_KEYS = (42, 54)  # KEY_LEFTSHIFT, KEY_RIGHTSHIFT: a shifted character is one key press plus Shift
ACK_EVENTS = 2  # a notification is acknowledged in the next connection event at worst


def ceiling(interval_ms: float, packets_per_event: int, window: int) -> float:
    per_event = min(packets_per_event, window / ACK_EVENTS)
    return per_event * (1000.0 / interval_ms) / REPORTS_PER_CHAR


def measured(observations: dict[str, Any]) -> dict[str, Any]:
    stats = observations.get("voxkey", {}).get("stats") or {}
    events = observations.get("events", [])
    presses = [e for e in events if int(e[1]) == EV_KEY and int(e[3]) == 1 and int(e[2]) not in SHIFT_KEYS]
    out: dict[str, Any] = {"characters": len(observations.get("text", ""))}
    if stats.get("seconds"):
        # includes discovery, pairing and the host's settling time before the first key
        out["voxkey_chars_per_s_including_pairing"] = round(stats["delivered_chars"] / stats["seconds"], 1)
    if len(presses) > 1:
        span = float(presses[-1][0]) - float(presses[0][0])
        out["host_key_presses"] = len(presses)
        out["host_chars_per_s"] = round(len(presses) / span, 1) if span > 0 else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, help="a results.json of an earlier guest run (skips the boot)")
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args()
    if args.results:
        results = json.loads(args.results.read_text())
    else:
        sys.path.insert(0, str(REPO))
        from tests.kernel.vm import run_cases

        run = run_cases(["bluetooth.pair_and_type"], timeout_s=3600)
        results = run.results
    outcome = results.get("cases", {}).get("bluetooth.pair_and_type", {})
    if outcome.get("status") != "ran":
        print(f"guest case did not run: {outcome.get('error') or outcome}")
    else:
        print("measured in the guest:", json.dumps(measured(outcome["observations"])))
    print(f"real-world ceiling (window {args.window} reports, {REPORTS_PER_CHAR} reports per character):")
    for name, interval, packets in PLATFORMS:
        print(f"  {name:52s} {ceiling(interval, packets, args.window):6.0f} chars/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
