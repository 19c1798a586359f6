"""Characters per second a host receives from voxkey's USB keyboard, on a real kernel path.

Boots the kernel-test guest (tests/kernel, virtme-ng + Debian kernel, no KVM)
and runs the ``usb.throughput`` guest case: the gadget on dummy_udc.0, the
host side of dummy_hcd reading it through usbhid/evdev. Two rates:

- raw f_hid writes (press, release, press, ...) straight to /dev/hidg0: the
  kernel path alone;
- ``voxkey type`` of a 2,000-character text: the whole transport.

Both are host-side rates (first key event to last, evdev timestamps). The
ceiling comes from the interrupt endpoint as the host sees it: one report per
poll interval, two reports (press + release) per character.

Under QEMU without KVM every guest instruction is emulated, so the measured
rates are a lower bound of what a Pi delivers; the ceiling is exact.

    python benchmarks/usb_throughput.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.kernel.vm import run_cases  # noqa: E402

REPORTS_PER_CHAR = 2  # press with modifiers, then all-keys-up


def poll_interval_s(b_interval: int, speed_mbps: str) -> float:
    """USB 2.0 interrupt endpoint period: high speed 2^(bInterval-1) microframes, else bInterval frames."""
    if speed_mbps in ("480", "5000", "10000", "20000"):
        return float(2 ** (b_interval - 1)) * 125e-6
    return b_interval * 1e-3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the raw measurements as JSON")
    args = parser.parse_args()
    run = run_cases(["usb.throughput"])
    outcome = run.case("usb.throughput")
    if outcome.get("status") != "ran":
        print(f"guest case failed: {outcome.get('error') or 'did not run'}\n{run.log_tail()}", file=sys.stderr)
        return 1
    seen = outcome["observations"]
    interval = poll_interval_s(int(seen["ep_81_bInterval"], 16), seen["speed_mbps"])
    ceiling = 1 / (interval * REPORTS_PER_CHAR)
    if args.json:
        print(json.dumps({**seen, "poll_interval_s": interval, "ceiling_chars_per_s": ceiling}, indent=1))
    raw, typed = seen["raw_hidg_writes"], seen["voxkey_type"]
    print(f"guest boot {run.boot_seconds} s, wall {run.wall_seconds:.0f} s, kernel path: dummy_hcd, no KVM")
    print(f"link {seen['speed_mbps']} Mb/s, ep 0x81 bInterval {seen['ep_81_bInterval']} = {interval * 1e3:g} ms poll")
    print(f"ceiling: {ceiling:.0f} chars/s ({REPORTS_PER_CHAR} reports per char, 1 report per poll)")
    print(
        f"raw /dev/hidg0 writes: {raw['writer_chars']} chars in {raw['writer_seconds']} s = "
        f"{raw['writer_chars_per_s']} chars/s (blocking writes: paced by the host's polls); "
        f"evdev reader saw {raw['chars']} chars at {raw['chars_per_s']} chars/s, "
        f"{raw['reader_dropped']} SYN_DROPPED"
    )
    print(
        f"voxkey type: {typed['chars']} chars in {typed['seconds']} s = {typed['chars_per_s']} chars/s "
        f"(process wall {typed['process_wall_seconds']} s incl. start-up, rc {typed['rc']}, "
        f"{typed['reader_dropped']} SYN_DROPPED)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
