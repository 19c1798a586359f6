"""The daemon's heap settings: buffers of a phrase's size keep their own mapping after a big one was freed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

PROBE = textwrap.dedent(
    """
    import ctypes, sys
    sys.path.insert(0, sys.argv[1])

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[2] == "limited":
        from voxkey.memory import limit_heap_growth
        assert limit_heap_growth()
    big = bytearray(4_000_000)  # a whole recording's worth; glibc maps it, and by default its free
    del big                     # raises the mmap threshold to 4 MB
    before = libc.mallinfo2().hblks
    phrase = bytearray(960_000)  # a 15 s phrase as float32, as whisper gets it
    print(libc.mallinfo2().hblks - before)
    """
)


def _new_mappings(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* settings from the caller's environment
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO_ROOT / "firmware"), mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    return int(done.stdout.strip())


def test_glibc_default_moves_phrase_buffers_onto_the_heap() -> None:
    """The premise: without our settings, a phrase-sized buffer after a big free is no longer mapped on its own."""
    assert _new_mappings("default") == 0


def test_limited_heap_keeps_phrase_buffers_in_their_own_mapping() -> None:
    assert _new_mappings("limited") == 1
