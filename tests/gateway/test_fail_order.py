"""A client told of a failed setup hears it before the error is printed (a client may act on the print)."""

from __future__ import annotations

import pytest

from gateway.cli._common import Failed, before_failing, fail


def test_fail_tells_first_then_prints(capsys: pytest.CaptureFixture[str]) -> None:
    printed_when_told: list[str] = []

    def tell(message: str) -> None:
        printed_when_told.append(capsys.readouterr().err)
        assert message == "no such policy file"

    with before_failing(tell), pytest.raises(Failed):
        fail("no such policy file")
    assert printed_when_told == [""]  # nothing printed yet when the client was told
    assert "error: no such policy file" in capsys.readouterr().err
    with pytest.raises(Failed):  # outside the block, nobody is told
        fail("again")
    assert printed_when_told == [""]
