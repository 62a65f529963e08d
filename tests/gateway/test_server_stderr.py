from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.handshake import STDERR_CUT_MARGIN, STDERR_LINE_BYTES, EarlyStart, mask_stderr, spawn_server
from gateway.specs import StdioCommand

TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


@contextmanager
def _server(name: str, code: str) -> Iterator[EarlyStart]:
    """A Python server running `code`, its stderr read by the gateway's pump; stopped and its pipes closed."""
    early = spawn_server(name, StdioCommand(sys.executable, ("-c", code)), max_bytes=1 << 20)
    try:
        yield early
    finally:
        early.process.kill()
        early.process.wait()
        for pipe in (early.process.stdin, early.process.stdout):
            if pipe is not None:
                pipe.close()
        if early.stderr_thread is not None:
            early.stderr_thread.join(10)  # it closes the stderr pipe at its end


def _lines(early: EarlyStart, count: int) -> list[str]:
    """The stderr lines taken so far, once `count` have come (or 30 s have passed)."""
    deadline = time.monotonic() + 30
    while len(early.stderr_tail) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(early.stderr_tail)


def test_each_stderr_line_is_passed_on_masked_as_soon_as_it_is_written() -> None:
    # three lines, then the server goes quiet for a minute without closing its stderr: each line must be
    # taken as it comes, not when a buffer fills or the pipe closes
    code = (
        "import sys, time\n"
        "for line in ('starting', 'connecting with " + TOKEN + "', 'Processing request of type CallToolRequest'):\n"
        "    sys.stderr.write(line + '\\n'); sys.stderr.flush()\n"
        "time.sleep(60)\n"
    )
    with _server("quiet", code) as early:
        assert _lines(early, 3) == [
            "starting",
            "connecting with [MASKED:github-token]",
            "Processing request of type CallToolRequest",
        ]
        assert early.process.poll() is None  # still running: the lines came before the pipe closed


def test_a_line_met_again_is_masked_the_same_way_short_or_long() -> None:
    line = f"retrying with {TOKEN}"
    assert mask_stderr(line) == mask_stderr(line) == "retrying with [MASKED:github-token]"
    long = "x " * 1000 + line  # past the length of the lines remembered
    assert mask_stderr(long) == mask_stderr(long) == "x " * 1000 + "retrying with [MASKED:github-token]"


def test_an_overlong_stderr_line_is_cut_and_skipped_and_the_next_line_still_comes() -> None:
    # 5 MB without a newline: a secret early on, and another straddling the cut, where a piece of it alone
    # would no longer look like a token. The gateway keeps the head of the line, masked, and counts the rest.
    cut = STDERR_LINE_BYTES
    head = f"dumping {TOKEN} " + "x" * (cut - 20 - len(f"dumping {TOKEN} "))  # the second token starts 20 bytes
    assert len(head) < cut < len(head) + len(TOKEN)  # before the cut and ends after it
    size = 5_000_000
    code = (
        "import sys, time\n"
        f"head = {head!r}\n"
        f"straddling = {TOKEN!r}\n"
        f"sys.stderr.write(head + straddling + 'y' * ({size} - len(head) - len(straddling)) + '\\n')\n"
        "sys.stderr.write('after\\n'); sys.stderr.flush()\n"
        "time.sleep(60)\n"
    )
    with _server("dumper", code) as early:
        first, second = _lines(early, 2)
        assert second == "after"
        kept = cut - STDERR_CUT_MARGIN
        assert first == (mask_stderr(head[:kept]) + f" [line cut: {size - kept:,} more bytes not shown]")
        assert first.startswith("dumping [MASKED:github-token] xxx")
        assert "ghp_" not in first and "yyy" not in first  # nothing of the secret or of the skipped part
