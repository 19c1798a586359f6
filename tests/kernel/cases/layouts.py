"""Host layouts on a real kernel: `voxkey type --layout de|it|fr` through the USB gadget.

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

ITALIAN_SENTENCE = "Perché è così caro? Costa 5 € @ [casa] {ok} #1, città più bella; l'ò, ù e ç.\n"
"""Italian: €, @, #, brackets and braces are AltGr keys; accented vowels have keys of their own."""

FRENCH_SENTENCE = "Être à côté du maître : « hôtel », naïve Noël, 20 € ; où ça ? Ê Ô Â Ë Ï Ü ê ô û î â ë ï ü ÿ\n"
"""French AZERTY: circumflex and diaeresis only through dead keys (also on capitals), « » € AltGr."""

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


def _sentence_case(context: GuestContext, layout: str, text: str) -> CaseResult:
    setup = ensure_gadget_up(context)
    recorder = start_recorder()
    try:
        process = voxkey_type_layout(context, hidg_device(context), layout)
        run = finish(process, text, 240)
        recorder.wait_quiet(1.0)
    finally:
        recorder.stop()
    return {"setup": setup, "text": text, "layout": layout, "voxkey": run, **recorder.snapshot()}


@guest_case("layouts.italian_sentence", modules=MODULES, timeout_s=300)
def italian_sentence(context: GuestContext) -> CaseResult:
    """`voxkey type --layout it`: a second AltGr layout."""
    return _sentence_case(context, "it", ITALIAN_SENTENCE)


@guest_case("layouts.french_sentence", modules=MODULES, timeout_s=300)
def french_sentence(context: GuestContext) -> CaseResult:
    """`voxkey type --layout fr`: AZERTY, dead circumflex and diaeresis."""
    return _sentence_case(context, "fr", FRENCH_SENTENCE)
