"""Doctor checks of speech: the model file, the microphone, and the LAN speech server (where audio goes)."""

from __future__ import annotations

import os
from pathlib import Path

from voxkey.doctor.base import CheckContext, CheckResult
from voxkey.errors import ModelError
from voxkey.models import OFFICIAL_MODELS, find_model, model_name_from_path, verify_model


class SpeechChecks(CheckContext):
    def check_model(self) -> CheckResult:
        name = self.config.asr.model
        try:
            path = find_model(name)
        except ModelError as exc:
            return CheckResult("model", False, str(exc), _model_fix(name, None))
        status = verify_model(path)
        if not status.ok:
            return CheckResult("model", False, f"{path}: {status.detail}", _model_fix(name, path))
        if not os.access(path, os.R_OK):
            return CheckResult("model", False, f"{path} is not readable", f"chmod a+r {path}")
        return CheckResult("model", True, f"{path} ({status.verdict}: {status.detail})")

    def check_audio(self) -> CheckResult:
        wanted = self.config.audio.device
        try:
            import sounddevice as sd

            devices = sd.query_devices()
        except (OSError, ImportError) as exc:
            return CheckResult("audio", False, f"PortAudio is not usable: {exc}", "sudo apt install libportaudio2")
        inputs = [(i, str(d["name"])) for i, d in enumerate(devices) if d["max_input_channels"] > 0]
        if not inputs:
            return CheckResult(
                "audio",
                False,
                "no microphone found",
                "plug in a USB microphone or set up the HAT (hardware/microphones.md); check with arecord -l",
            )
        names = ", ".join(name for _, name in inputs)
        if wanted is None or wanted == "":
            return CheckResult("audio", True, f"default input; microphones: {names}")
        if isinstance(wanted, int) or str(wanted).isdigit():
            index = int(wanted)
            match = [name for i, name in inputs if i == index]
        else:
            match = [name for _, name in inputs if str(wanted).lower() in name.lower()]
        if not match:
            return CheckResult(
                "audio", False, f"audio.device {wanted!r} matches no microphone (have: {names})", "fix audio.device"
            )
        return CheckResult("audio", True, f"audio.device {wanted!r} → {match[0]}")

    def check_remote_privacy(self) -> CheckResult:
        """asr.remote sends audio off the device: say where, and warn when it leaves the LAN or is unencrypted."""
        from voxkey.remote.network import privacy_findings

        remote = self.config.asr.remote
        if not remote.enabled:
            return CheckResult("speech server", True, "asr.remote off: speech stays on this device", used=False)
        found = privacy_findings(remote)
        return CheckResult("speech server privacy", found.ok, found.detail, found.fix)

    def check_remote_server(self) -> CheckResult:
        from voxkey.remote.clients import client_for
        from voxkey.remote.network import reachability

        remote = self.config.asr.remote
        if not remote.enabled:
            return CheckResult("speech server reachable", True, "asr.remote off", used=False)
        found = reachability(client_for(remote).probe, remote.timeout_s)
        return CheckResult("speech server reachable", found.ok, found.detail, found.fix)


def _model_fix(name: str, path: Path | None) -> str:
    """The command that replaces a missing or damaged model.

    ``asr.model`` may be a path (``/data/ggml-tiny.en-q5_1.bin``) or a name that is no official model; a
    ``voxkey models download`` of that text would fail. A damaged file is replaced where it lies
    (``--dir``): downloaded anywhere else, the damaged copy would still be found first.
    """
    if path is None:
        return f"voxkey models download {name}"
    official = model_name_from_path(path)
    if official not in OFFICIAL_MODELS:
        return f"replace {path} with an intact copy (it is not an official model voxkey can download)"
    return f"voxkey models download {official} --dir {path.parent}"
