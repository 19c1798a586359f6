"""The order in which text, undo, erase and Eject reach the typist: one queue, no threads, no whisper."""

from __future__ import annotations

from typing import Any

from voxkey.ordering import Dictation, OutputQueue
from voxkey.text.commands import TypeText
from voxkey.typist import EjectRequest, EraseRequest, Job, TypePiece, UndoRequest


class Session:
    """What the queue asks of a dictation's session: to stop transcribing once it is cancelled."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def dictation(queue: OutputQueue) -> Dictation:
    session: Any = Session()
    item = Dictation(queue.number(), pressed_at=0.0, session=session)
    queue.add(item)
    return item


def piece(item: Dictation, text: str) -> None:
    item.pieces.append([TypeText(text)])


def drain(queue: OutputQueue) -> tuple[list[Job], list[tuple[int, bool]]]:
    """Every job the typist would get now, and the dictations that left the queue (number, handed)."""
    jobs: list[Job] = []
    out: list[tuple[int, bool]] = []
    while (job := queue.next_job(lambda d: out.append((d.number, d.handed)))) is not None:
        jobs.append(job)
    return jobs, out


def test_a_dictation_goes_out_piece_by_piece_and_what_was_asked_later_waits_for_its_end() -> None:
    queue = OutputQueue()
    first = dictation(queue)
    queue.add(UndoRequest(queue.number()))
    piece(first, "one")
    assert drain(queue) == ([TypePiece(1, [TypeText("one")])], [])  # the undo waits: more phrases may come
    piece(first, "two")
    first.finished = True
    assert drain(queue) == ([TypePiece(1, [TypeText("two")]), UndoRequest(2)], [(1, True)])
    assert len(queue) == 0


def test_a_dictation_with_nothing_to_type_leaves_quietly_and_lets_the_next_go() -> None:
    queue = OutputQueue()
    empty, second = dictation(queue), dictation(queue)
    piece(second, "text")
    second.finished = True
    assert drain(queue) == ([], [])  # the first is still being transcribed
    empty.finished = True
    assert drain(queue) == ([TypePiece(2, [TypeText("text")])], [(1, False), (2, True)])


def test_a_cancelled_dictation_that_typed_nothing_just_leaves() -> None:
    queue = OutputQueue()
    item = dictation(queue)
    queue.add(EjectRequest(queue.number()))
    piece(item, "never typed")
    queue.drop(item)
    assert item.session.cancelled  # type: ignore[attr-defined]
    assert drain(queue) == ([EjectRequest(2)], [])
    assert not queue.in_flight()


def test_a_cancelled_dictation_that_typed_something_becomes_an_erase_in_its_place() -> None:
    queue = OutputQueue()
    item = dictation(queue)
    piece(item, "typed")
    assert drain(queue)[0] == [TypePiece(1, [TypeText("typed")])]
    queue.add(UndoRequest(queue.number()))
    piece(item, "not yet typed")
    queue.drop(item)
    assert drain(queue) == ([EraseRequest(1), UndoRequest(2)], [])


def test_cancelling_a_dictation_already_out_appends_its_erase() -> None:
    queue = OutputQueue()
    item = dictation(queue)
    piece(item, "all of it")
    item.finished = True
    drain(queue)
    queue.drop(item)
    assert drain(queue) == ([EraseRequest(1)], [])


def test_the_cancel_button_finds_the_newest_dictation_not_cancelled() -> None:
    queue = OutputQueue()
    first, second = dictation(queue), dictation(queue)
    assert queue.newest_dictation() is second
    queue.drop(second)
    assert queue.newest_dictation() is first
    assert queue.dictation(2) is second and queue.dictation(3) is None
    assert queue.in_flight()
    queue.drop(first)
    assert queue.newest_dictation() is None and not queue.in_flight()


def test_numbers_are_one_sequence_for_dictations_and_requests() -> None:
    queue = OutputQueue()
    assert [queue.number(), dictation(queue).number, queue.number()] == [1, 2, 3]
