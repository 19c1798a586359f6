"""The daemon's output beyond a US host on one link: host layouts, unsupported characters, ``transport: both``.

Real whisper on real speech: espeak-ng says a sentence with "café" and
"señor", and ``asr.initial_prompt`` (the user's vocabulary) makes tiny.en
spell them so, as it would for a user who dictates such words. The reference
text is what ``voxkey transcribe`` gives for the same file and settings; the
host side is libxkbcommon with the host's layout (``XkbHost``). Only the
daemon's public surface is used: ``Daemon(config, options, link_factory=...,
engine=...)`` and ``run()``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.daemon_harness import MODEL, NO_LEDS, whisper_fixture
from tests.daemon_harness import make_config as harness_config
from voxkey.asr import AsrSettings, WhisperEngine
from voxkey.config import Config, OutputSettings
from voxkey.daemon import Daemon, RunOptions
from voxkey.dictation import transcribe_file
from voxkey.errors import HostUnavailableError
from voxkey.hid import MODIFIER_BITS, USAGES
from voxkey.layouts.xkb_host import XkbHost
from voxkey.transports.base import LinkDown
from voxkey.transports.host import Links
from voxkey.typing_policy import UnsupportedPolicy

PROMPT = "Café au lait, naïve señor, crème brûlée."
SENTENCE = "I ordered a café au lait at the café, said the naïve señor. The price was five euros."
ACCENTED = {"é": "e", "ñ": "n"}
"""The accented letters the recording gives, and their transliteration."""


engine = whisper_fixture(initial_prompt=PROMPT)


@pytest.fixture(scope="module")
def cafe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.fail("espeak-ng and sox are needed (.ci/run installs them)")
    directory = tmp_path_factory.mktemp("cafe")
    raw, path = directory / "raw.wav", directory / "cafe.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "-s", "140", SENTENCE], check=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def reference(engine: WhisperEngine, cafe: Path) -> str:
    """What ``voxkey transcribe`` gives; the test needs it to hold the accented letters."""
    text = transcribe_file(engine, cafe, Config().vad, Config().audio).text
    assert "café" in text and "señor" in text, f"the recording must give the accented words: {text!r}"
    assert set(text) - {chr(c) for c in range(0x20, 0x7F)} <= set(ACCENTED), text
    return text


def make_config(**output: object) -> Config:
    """The harness's config without an LED, whisper with the vocabulary prompt, ``output`` settings."""
    return harness_config(
        leds=NO_LEDS,
        asr=AsrSettings(model=MODEL, threads=1, initial_prompt=PROMPT),
        output=OutputSettings(**output),  # type: ignore[arg-type]
    )


class Host:
    """A host on one link: records reports; it can be away, or leave after ``leave_after`` reports."""

    def __init__(self, name: str, present: bool = True, leave_after: int | None = None) -> None:
        self.name = name
        self.reports: list[bytes] = []
        self.present = present
        self.leave_after = leave_after
        self.lock = threading.Lock()

    def wait_for_host(self, deadline: float | None) -> None:
        if not self.present:
            raise HostUnavailableError(f"{self.name} host away")

    def send(self, report: bytes, deadline: float | None) -> None:
        with self.lock:
            if not self.present:
                raise LinkDown(f"{self.name} host gone", previous_delivered=True)  # it got the report before
            self.reports.append(report)
            if self.leave_after is not None and len(self.reports) >= self.leave_after:
                self.present = False  # it got this report, then walked away

    def led_state(self) -> int:
        return 0

    def release_all(self) -> None:
        return None

    def close(self) -> None:
        return None


def host_text(reports: list[bytes], layout: str) -> str:
    return XkbHost(layout).reports(reports)


def dictate(cafe: Path, engine: WhisperEngine, hosts: list[Host], **output: object) -> None:
    daemon = Daemon(
        make_config(**output), RunOptions(audio_file=cafe), link_factory=lambda c: Links(hosts), engine=engine
    )
    assert daemon.run() == 0
    assert daemon.counters.typed == 1 and daemon.counters.errors == 0, daemon.counters


def test_a_german_host_gets_the_text_with_its_accents_and_only_n_tilde_transliterated(
    cafe: Path, engine: WhisperEngine, reference: str
) -> None:
    """de types é through its dead acute key and ' on another key than US; it has no ñ at all."""
    host = Host("usb")
    dictate(cafe, engine, [host], layout="de")
    assert host_text(host.reports, "de") == reference.replace("ñ", "n")
    assert "é" in host_text(host.reports, "de")
    assert host_text(host.reports, "us") != reference.replace("ñ", "n")


@pytest.mark.parametrize(
    ("policy", "accented_as"),
    [(UnsupportedPolicy.TRANSLITERATE, ACCENTED), (UnsupportedPolicy.SKIP, dict.fromkeys(ACCENTED, ""))],
)
def test_a_us_host_gets_unsupported_letters_as_the_policy_says(
    cafe: Path, engine: WhisperEngine, reference: str, policy: UnsupportedPolicy, accented_as: dict[str, str]
) -> None:
    host = Host("usb")
    dictate(cafe, engine, [host], layout="us", unsupported_characters=policy)
    assert host_text(host.reports, "us") == reference.translate(str.maketrans(accented_as))


def test_linux_policy_types_each_unsupported_letter_as_ctrl_shift_u_and_its_code_point(
    cafe: Path, engine: WhisperEngine, reference: str
) -> None:
    host = Host("usb")
    dictate(cafe, engine, [host], layout="us", unsupported_characters=UnsupportedPolicy.LINUX)
    entry = bytes([MODIFIER_BITS["ctrl"] | MODIFIER_BITS["shift"], 0, USAGES["u"], 0, 0, 0, 0, 0])
    assert host.reports.count(entry) == sum(reference.count(char) for char in ACCENTED)
    # Without an input method xkb makes Ctrl+Shift+U the control character ^U, then the hex digits and a space.
    spelled = {char: f"\x15{ord(char):x} " for char in ACCENTED}
    assert host_text(host.reports, "us") == reference.translate(str.maketrans(spelled))


def test_with_both_transports_the_preferred_host_gets_the_text_and_the_other_nothing(
    cafe: Path, engine: WhisperEngine, reference: str
) -> None:
    usb, bluetooth = Host("usb"), Host("bluetooth")
    dictate(cafe, engine, [bluetooth, usb], transport="both", prefer="bluetooth")
    assert host_text(bluetooth.reports, "us") == reference.translate(str.maketrans(ACCENTED))
    assert usb.reports == []


def test_with_both_transports_and_one_host_away_the_other_gets_the_text(
    cafe: Path, engine: WhisperEngine, reference: str
) -> None:
    usb, bluetooth = Host("usb", present=False), Host("bluetooth")
    dictate(cafe, engine, [usb, bluetooth], transport="both")
    assert usb.reports == []
    assert host_text(bluetooth.reports, "us") == reference.translate(str.maketrans(ACCENTED))


def test_with_both_transports_the_rest_of_a_host_leaving_mid_text_is_held_not_sent_to_the_other(
    cafe: Path, engine: WhisperEngine, reference: str
) -> None:
    """The other link's host is another computer: the rest waits for a tap (``voxkey.kept``), here until it
    expires; the tap that sends it there is ``test_daemon_kept``'s and ``test_kept_links``'s."""
    usb, bluetooth = Host("usb", leave_after=21), Host("bluetooth")  # 21: the press of the 11th character
    daemon = Daemon(
        make_config(transport="both", host_wait_s=1.0),
        RunOptions(audio_file=cafe),
        link_factory=lambda c: Links([usb, bluetooth]),
        engine=engine,
    )
    assert daemon.run() == 0
    on_usb = host_text(usb.reports, "us")
    assert on_usb == reference.translate(str.maketrans(ACCENTED))[:11]
    assert bluetooth.reports == []
    assert daemon.counters.errors == 1  # expired after host_wait_s, logged with its characters
