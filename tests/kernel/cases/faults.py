"""Guest cases for issue #14's fault matrix that need a real kernel.

``faults.microphone_vanishes``: the microphone disappears mid-recording and comes back. ``snd-aloop``'s
platform device is unbound from its driver while voxkey's ``MicrophoneSource`` records from it (what the
kernel does when a USB microphone is pulled: the card is disconnected under the open stream), then bound
again. Observed: when and how the recording ended, what it kept, whether closing hangs, and whether a new
``MicrophoneSource`` in the same process (what the daemon opens at the next press) records again.
"""

from __future__ import annotations

import json
import subprocess

from tests.kernel.cases import CaseResult, GuestContext, guest_case

_VANISH = r"""
import json, os, subprocess, sys, threading, time
import numpy as np
import sounddevice as sd
from voxkey.audio import AudioSettings, MicrophoneSource

source_path, block_ms = sys.argv[1], int(sys.argv[2])
DRIVER = "/sys/bus/platform/drivers/snd_aloop"
card = next(name for name in os.listdir(DRIVER) if name.startswith("snd_aloop"))
result = {"platform_device": card}

def capture_index():
    devices = sd.query_devices()
    return next(
        i for i, d in enumerate(devices)
        if "Loopback" in str(d["name"]) and ",1)" in str(d["name"]) and d["max_input_channels"] > 0
    )

def record(seconds, unplug_after_s=None):
    mic = MicrophoneSource(AudioSettings(device=capture_index(), block_ms=block_ms, stall_timeout_s=2.0))
    mic.open()
    mic.start_listening()
    player = subprocess.Popen(["aplay", "-q", "-D", "hw:Loopback,0,0", source_path], stderr=subprocess.PIPE, text=True)
    got, unplugged_at, unplugger = 0, None, None
    started = time.monotonic()
    for block in mic.frames():
        got += block.size
        if unplug_after_s is not None and unplugged_at is None and got >= unplug_after_s * 16000:
            unplugged_at = time.monotonic()
            # the driver's remove waits until the card's files are closed: unbind from another thread
            unplugger = threading.Thread(target=lambda: open(DRIVER + "/unbind", "w").write(card))
            unplugger.start()
        if unplug_after_s is None and got >= seconds * 16000:
            mic.stop_listening(post_roll=False)
    ended = time.monotonic()
    error = mic.error
    closing = time.monotonic()
    mic.close()
    closed_s = time.monotonic() - closing
    if unplugger is not None:
        unplugger.join(30)
    try:
        player.wait(30)
    except subprocess.TimeoutExpired:
        player.kill()
    return {
        "captured_s": round(got / 16000, 3),
        "ended_after_unplug_s": round(ended - unplugged_at, 3) if unplugged_at else None,
        "recording_s": round(ended - started, 3),
        "error": str(error) if error else None,
        "close_s": round(closed_s, 3),
        "unbind_done": None if unplugger is None else not unplugger.is_alive(),
        "player_rc": player.returncode,
    }

result["vanish"] = record(0, unplug_after_s=2.0)
result["card_present_after_unbind"] = os.path.exists(DRIVER + "/" + card)
open(DRIVER + "/bind", "w").write(card)
time.sleep(1.0)
result["card_present_after_bind"] = os.path.exists(DRIVER + "/" + card)
try:
    result["back_same_process"] = record(2.0)
except Exception as exc:
    result["back_same_process"] = {"exception": f"{type(exc).__name__}: {exc}"}
print(json.dumps(result))
"""


BLOCK_MS = 120
"""As in ``cases/audio.py``: the emulated guest CPU cannot keep up with 30 ms callbacks."""


@guest_case("faults.microphone_vanishes", modules=("snd_aloop",), timeout_s=400)
def microphone_vanishes(context: GuestContext) -> CaseResult:
    source = context.repo.parent / "shared" / "speech" / "jfk.wav"
    run = subprocess.run(
        [context.python, "-S", "-c", _VANISH, str(source), str(BLOCK_MS)],
        capture_output=True,
        text=True,
        timeout=380,
        env=context.voxkey_env(),
    )
    result: CaseResult = {"rc": run.returncode, "stderr": run.stderr[-4000:]}
    if run.returncode == 0 and run.stdout.strip():
        result.update(json.loads(run.stdout.strip().splitlines()[-1]))
    return result
