"""Guest case: voxkey's live microphone path (sounddevice → PortAudio → ALSA) on a real kernel.

``snd-aloop`` is the kernel's loopback sound card: what is played into its
device 0 comes out of its device 1 as capture. The case opens voxkey's
``MicrophoneSource`` on the capture side, exactly as the daemon opens a mic HAT
(device chosen from the ALSA list, 16 kHz mono int16, pre-roll running), plays a
real recording into the playback side with ``aplay`` (alsa-utils), and saves what the microphone delivered
in the shared directory. The host-side test compares it with the recording and
transcribes it.
"""

from __future__ import annotations

import json
import subprocess

from tests.kernel.cases import CaseResult, GuestContext, guest_case

RECORDING = "jfk"

_RECORDER = r"""
import json, subprocess, sys, time
import numpy as np
import sounddevice as sd
from voxkey.audio import AudioSettings, MicrophoneSource, read_wav, write_wav

source_path, captured_path = sys.argv[1], sys.argv[2]
TRAILING_SILENCE = 16000
samples, _ = read_wav(source_path)
devices = sd.query_devices()
names = [str(d["name"]) for d in devices]

def loopback(device: int, direction: str) -> int:
    return next(
        i for i, d in enumerate(devices)
        if "Loopback" in str(d["name"]) and f",{device})" in str(d["name"]) and d[f"max_{direction}_channels"] > 0
    )

capture = loopback(1, "input")
block_ms = int(sys.argv[3])
mic = MicrophoneSource(AudioSettings(device=capture, block_ms=block_ms, pre_roll_ms=300, post_roll_ms=300))
mic.open()
time.sleep(0.5)  # the pre-roll ring fills with the card's silence, as it does while nobody presses the button
mic.start_listening()
# The speaker is another process, as a person is: only voxkey's capture runs in this one.
# Trailing silence: when aplay stops, snd-aloop hands the capture side some stale samples of the
# playback ring (seen: 64 zeros, then audio from 3,840 samples back). That must land on silence.
played = captured_path + ".played.wav"
write_wav(played, np.concatenate([samples, np.zeros(TRAILING_SILENCE, np.int16)]))
subprocess.run(["aplay", "-q", "-D", "hw:Loopback,0,0", played], check=True, timeout=120)
mic.stop_listening()
captured = np.concatenate(list(mic.frames()))
error = mic.error
mic.close()
write_wav(captured_path, captured)
print(json.dumps({
    "devices": names, "capture": names[capture],
    "device_rate": mic.device_rate, "captured_samples": int(captured.size), "source_samples": int(samples.size),
    "error": str(error) if error else None,
}))
"""


BLOCK_MS = 120
"""Four VAD frames per callback. The emulated guest CPU cannot keep up with 33 Python callbacks a second
(30 ms blocks lost two thirds of the audio there); a Pi runs natively and keeps the default."""


@guest_case("audio.loopback_microphone", modules=("snd_aloop",), timeout_s=300)
def loopback_microphone(context: GuestContext) -> CaseResult:
    """Record a real recording through voxkey's MicrophoneSource from the loopback card."""
    source = context.repo.parent / "shared" / "speech" / f"{RECORDING}.wav"
    captured = context.work_dir / "loopback-microphone.wav"
    run = subprocess.run(
        [context.python, "-S", "-c", _RECORDER, str(source), str(captured), str(BLOCK_MS)],
        capture_output=True,
        text=True,
        timeout=280,
        env=context.voxkey_env(),
    )
    result: CaseResult = {"rc": run.returncode, "stderr": run.stderr[-4000:], "captured_wav": str(captured)}
    if run.returncode == 0:
        result.update(json.loads(run.stdout.strip().splitlines()[-1]))
    return result
