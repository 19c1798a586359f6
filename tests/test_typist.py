"""The typist's ledger: what each dictation typed, what undo and cancel erase, in order with the rest.

Jobs are performed one by one in the test's thread (``Typist.perform``, what the
typist's thread runs), against a host that records every report: no whisper,
no sleeping, exact characters.
"""

from __future__ import annotations

import dataclasses
import threading

from tests.hosts import CaptureLink, MediaKeyHost
from voxkey.config import Config, DictationSettings, OutputSettings
from voxkey.errors import HostUnavailableError, TransportError
from voxkey.hid import CONSUMER_EJECT
from voxkey.text.commands import EraseDictation, PressKey, TypeText, UndoLastDictation
from voxkey.transports.base import LinkDown
from voxkey.typist import EjectRequest, EraseRequest, OutputDone, TypePiece, Typist, UndoRequest


def typist(host: CaptureLink, **output: object) -> Typist:
    config = dataclasses.replace(Config(), output=OutputSettings(transport="usb", **output))  # type: ignore[arg-type]
    result = Typist(config, on_done=lambda done: None)
    result.open([host], on_waiting=lambda waiting: None)
    return result


def say(number: int, *texts: str) -> TypePiece:
    return TypePiece(number, [TypeText(text) for text in texts])


def test_dictations_are_typed_in_order_with_one_space_between() -> None:
    host = CaptureLink()
    t = typist(host)
    assert t.perform(say(1, "Hello there.")) == OutputDone(1)
    assert t.perform(say(2, "How are you?")) == OutputDone(2)
    assert host.screen() == "Hello there. How are you?"


def test_pieces_of_one_dictation_join_as_the_text_says() -> None:
    host = CaptureLink()
    t = typist(host)
    t.perform(say(1, "One phrase,"))
    t.perform(TypePiece(1, [TypeText(" and its rest.", joins_previous=True)]))
    assert host.screen() == "One phrase, and its rest."


def test_a_piece_that_starts_with_its_full_stop_gets_no_space_before_it() -> None:
    """A full stop held back at a short pause arrives at the start of the next piece, or alone at the end."""
    host = CaptureLink()
    t = typist(host)
    t.perform(say(1, "It may justly be considered"))
    t.perform(say(1, ". Printing differs"))
    t.perform(say(1, " from the other arts"))
    t.perform(say(1, "."))
    assert host.screen() == "It may justly be considered. Printing differs from the other arts."


def test_no_space_between_dictations_when_turned_off() -> None:
    host = CaptureLink()
    t = typist(host)
    t.config = dataclasses.replace(t.config, dictation=DictationSettings(space_between=False))
    t.perform(say(1, "ab"))
    t.perform(say(2, "cd"))
    assert host.screen() == "abcd"


def test_undo_erases_exactly_the_last_dictation_and_its_space() -> None:
    host = CaptureLink()
    t = typist(host)
    t.perform(say(1, "First."))
    t.perform(say(2, "Second,"))
    t.perform(TypePiece(2, [TypeText(" more.", joins_previous=True)]))
    assert t.perform(UndoRequest(3)) == OutputDone(3, undone=1)
    assert host.backspaces() == len(" Second, more.")
    assert host.screen() == "First."
    t.perform(say(4, "Again."))  # the space rule sees "First." again
    assert host.screen() == "First. Again."


def test_a_second_undo_has_nothing_to_undo() -> None:
    host = CaptureLink()
    t = typist(host)
    t.perform(say(1, "Only."))
    assert t.perform(UndoRequest(2)).undone == 1
    assert t.perform(UndoRequest(3)) == OutputDone(3, undone=0)
    assert host.screen() == ""
    assert host.backspaces() == len("Only.")


def test_erase_of_a_cancelled_dictation_erases_only_that_one() -> None:
    host = CaptureLink()
    t = typist(host)
    t.perform(say(1, "Keep."))
    t.perform(say(2, "Drop"))
    t.perform(EraseRequest(1))  # not the last one typed: nothing to erase
    assert host.screen() == "Keep. Drop"
    assert t.perform(EraseRequest(2)) == OutputDone(2)  # erasing is no undo
    assert host.screen() == "Keep."


def test_scratch_that_erases_what_this_dictation_typed_so_far() -> None:
    host = CaptureLink()
    t = typist(host)
    t.perform(say(1, "Before."))
    t.perform(say(2, "wrong words"))
    t.perform(TypePiece(2, [EraseDictation(), TypeText("Right words.")]))
    assert host.screen() == "Before. Right words."


def test_spoken_undo_erases_the_dictation_before() -> None:
    host = CaptureLink()
    t = typist(host)
    t.perform(say(1, "Before."))
    assert t.perform(TypePiece(2, [UndoLastDictation()])).undone == 1
    assert host.screen() == ""


def test_a_key_command_goes_after_the_text_and_the_next_dictation_starts_without_a_space() -> None:
    host = CaptureLink()
    t = typist(host)
    t.perform(TypePiece(1, [TypeText("Dear Sir,"), PressKey("enter")]))
    t.perform(say(2, "Thanks."))
    assert host.typed() == "Dear Sir,\nThanks."


def test_eject_goes_to_a_host_with_media_keys() -> None:
    host = MediaKeyHost()
    t = typist(host)
    t.perform(say(1, "text first"))
    assert t.perform(EjectRequest(2)) == OutputDone(2, ejected=1)
    assert host.media_keys == [CONSUMER_EJECT]
    assert host.screen() == "text first"


def test_eject_over_a_keyboard_without_media_keys_is_an_error_that_says_so() -> None:
    t = typist(CaptureLink())
    done = t.perform(EjectRequest(1))
    assert isinstance(done.error, TransportError) and "has no media keys" in str(done.error)
    assert done.ejected == 0


class UnpluggedAfter(CaptureLink):
    """A host unplugged after ``keys`` key presses reached it (the next report fails)."""

    def __init__(self, keys: int) -> None:
        super().__init__()
        self.keys_left = keys

    def send(self, report: bytes, deadline: float | None) -> None:
        if any(report[2:]):
            if self.keys_left == 0:
                self.present.clear()
                raise LinkDown("unplugged")
            self.keys_left -= 1
        super().send(report, deadline)


def test_undo_after_a_partly_kept_dictation_erases_exactly_what_the_host_got() -> None:
    host = UnpluggedAfter(keys=len("First. Sec"))
    t = typist(host, host_wait_s=0.05)
    t.perform(say(1, "First."))
    done = t.perform(say(2, "Second."))
    assert isinstance(done.error, HostUnavailableError) and "4 characters not typed were dropped" in str(done.error)
    assert t.keyboard is not None and t.keyboard.pending_text == ""  # expired: dropped (and logged)
    assert host.screen() == "First. Sec"
    host.keys_left = 10**6
    host.present.set()  # back: the undo erases what arrived, no more
    assert t.perform(UndoRequest(3)).undone == 1
    assert host.screen() == "First."


def test_expired_kept_text_is_never_typed_later_nor_counted_for_the_next_dictation() -> None:
    """Before voxkey.kept the expired rest went out first with the next dictation, into whatever host was there."""
    host = UnpluggedAfter(keys=len("One tw"))
    t = typist(host, host_wait_s=0.05)
    assert t.perform(say(1, "One two.")).error is not None
    host.keys_left = 10**6
    host.present.set()
    t.perform(say(1, " And more of it."))  # the rest of dictation 1 goes with its kept text
    t.perform(say(2, "Three."))
    assert host.screen() == "One tw Three."
    t.perform(UndoRequest(3))
    assert host.screen() == "One tw"


def test_the_thread_reports_every_job_in_order() -> None:
    host = CaptureLink()
    done: list[OutputDone] = []
    finished = threading.Event()

    def on_done(event: OutputDone) -> None:
        done.append(event)
        if len(done) == 3:
            finished.set()

    t = Typist(Config(), on_done)
    t.open([host], on_waiting=lambda waiting: None)
    t.start()
    for job in (say(1, "a"), say(2, "b"), UndoRequest(3)):
        t.submit(job)
    assert finished.wait(10)
    t.stop(timeout=10)
    t.close_output()
    assert [d.number for d in done] == [1, 2, 3]
    assert host.screen() == "a"
