"""Recording the HCI monitor while voxkey types over Bluetooth and its radio cuts out mid-text.

Not a test: ``python tests/kernel/vm.py hci_capture.drop_mid_text`` with
``VOXKEY_GUEST_DIR`` set writes ``drop_mid_text.btsnoop`` (btmon's monitor
format) there; ``tests/transports/data/`` keeps a copy, which
``tests/transports/test_bluetooth_delivery.py`` replays through the delivery
ledger and the report pacer without a radio. The case reuses the Bluetooth
area's ``type_and_record`` (``cases/bluetooth.py``) unchanged.
"""

from __future__ import annotations

import signal
import subprocess
import time

from tests.kernel.cases import CaseResult, GuestContext, guest_case
from tests.kernel.cases import bluetooth as bt

CAPTURE_TEXT_LENGTH = 200
DROP_AFTER_PRESSES = 60


@guest_case("hci_capture.drop_mid_text", modules=bt.MODULES, timeout_s=1500)
def drop_mid_text(context: GuestContext) -> CaseResult:
    """btmon records every controller while voxkey types 200 characters and its radio drops after 60."""
    capture = context.work_dir / "drop_mid_text.btsnoop"
    bt.stack(context)  # controllers up before btmon starts: it then sees each one's index from the start
    btmon = subprocess.Popen(
        ["btmon", "-w", str(capture)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    time.sleep(2.0)
    try:
        observations = bt.type_and_record(
            context, "capture", bt.typing_text(CAPTURE_TEXT_LENGTH), drop_after_presses=DROP_AFTER_PRESSES
        )
    finally:
        btmon.send_signal(signal.SIGINT)
        try:
            _, btmon_err = btmon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            btmon.kill()
            _, btmon_err = btmon.communicate()
    adapters = {name: bt.adapter_address(name) for name in (bt.VOXKEY_ADAPTER, bt.HOST_ADAPTER)}
    return {
        **observations,
        "capture": str(capture),
        "capture_bytes": capture.stat().st_size if capture.exists() else 0,
        "btmon_stderr": btmon_err[-2000:],
        "adapters": adapters,
    }
