"""Host layouts on a real kernel: `voxkey type --layout de` through the USB gadget.

The guest's host side (dummy_hcd → usbhid → evdev) receives what the gadget
sends; these cases record the raw key events. ``test_layouts_usb.py`` replays
them through libxkbcommon with the German layout, exactly as a German Linux
desktop would, and compares the result with the sentence voxkey was given.
"""

from __future__ import annotations

import subprocess
import time

from tests.kernel.cases import CaseResult, GuestContext, finish, guest_case
from tests.kernel.cases.usb import (
    MODULES,
    UDC,
    ensure_gadget_up,
    hidg_device,
    start_recorder,
)

GERMAN_SENTENCE = (
    "Größere Äpfel, süße Öle und Übermut: „Das Frühstück kostet 12,50 €“, sagte Jürgen – "
    "'ja' & \"nein\" im Café à la carte, ‚genau‘ 3° warm; Fuß^2 = ?\n"
)
"""Umlauts both cases, ß, €, German and ASCII quotes (AltGr keys), dead-key accents and ^, a newline."""

CAPS_LOCK_SENTENCE = "Straße, Grüße und Maß: „Öl für 5 €“ – Café!\n"
"""Typed with the host's Caps Lock on: ß has no key then, so voxkey switches Caps Lock off around it."""


def voxkey_type_layout(context: GuestContext, device: str, layout: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            context.python,
            "-m",
            "voxkey",
            "type",
            "-",
            "--transport",
            "usb",
            "--device",
            device,
            "--layout",
            layout,
            "--udc",
            UDC,
            "--wait",
            "120",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=context.voxkey_env(),
    )


@guest_case("layouts.german_sentence", modules=MODULES, timeout_s=300)
def german_sentence(context: GuestContext) -> CaseResult:
    """`voxkey type --layout de` of a German sentence; the host's raw key events are the result."""
    setup = ensure_gadget_up(context)
    recorder = start_recorder()
    try:
        process = voxkey_type_layout(context, hidg_device(context), "de")
        run = finish(process, GERMAN_SENTENCE, 240)
        recorder.wait_quiet(1.0)
    finally:
        recorder.stop()
    return {"setup": setup, "text": GERMAN_SENTENCE, "layout": "de", "voxkey": run, **recorder.snapshot()}


@guest_case("layouts.german_caps_lock", modules=MODULES, timeout_s=300)
def german_caps_lock(context: GuestContext) -> CaseResult:
    """The same with Caps Lock switched on by the host first (EV_LED write), as a user might leave it."""
    setup = ensure_gadget_up(context)
    recorder = start_recorder()
    try:
        recorder.set_caps_lock(True)
        time.sleep(1.0)  # the LED output report travels host → gadget before typing starts
        process = voxkey_type_layout(context, hidg_device(context), "de")
        run = finish(process, CAPS_LOCK_SENTENCE, 240)
        recorder.wait_quiet(1.0)
        recorder.set_caps_lock(False)
        time.sleep(0.3)
    finally:
        recorder.stop()
    return {"setup": setup, "text": CAPS_LOCK_SENTENCE, "layout": "de", "voxkey": run, **recorder.snapshot()}
