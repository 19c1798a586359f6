"""What a reloaded config (SIGHUP, ``systemctl reload voxkey``) makes the daemon rebuild.

Most settings are read where they are used, so the daemon hands the new
config to every part and is done. A few are baked into something opened at
start (the whisper model, the keyboard links, the LED device, the button
pins, an open microphone stream): those parts are closed and opened again,
and only when a setting of theirs changed, because reopening costs seconds
(the model) or drops a host's connection (the links).
"""

from __future__ import annotations

from dataclasses import dataclass

from voxkey.config import Config


@dataclass(frozen=True)
class ReloadPlan:
    """Which parts to reopen for the new config; everything else takes the new settings as they are."""

    engine: bool
    """``asr`` changed: load the speech model again (the daemon's own engine only)."""
    output: bool
    """``output``, ``usb`` or ``bluetooth`` changed: close the keyboard links and open them again."""
    light: bool
    """``leds`` changed: open the LED again."""
    buttons: bool
    """``button`` changed: release the pins and open the buttons again."""
    microphone: bool
    """``audio`` or ``dictation.keep_microphone_open`` changed: close the stream (reopened on the next press,
    or at once if it is kept open)."""

    @classmethod
    def between(cls, old: Config, new: Config) -> ReloadPlan:
        return cls(
            engine=new.asr != old.asr,
            output=new.output != old.output or new.usb != old.usb or new.bluetooth != old.bluetooth,
            light=new.leds != old.leds,
            buttons=new.button != old.button,
            microphone=(
                new.audio != old.audio or new.dictation.keep_microphone_open != old.dictation.keep_microphone_open
            ),
        )
