"""Progress tokens on the dispatcher relays: the server sees one of the gateway's, the client gets its own back,
and no server can report on a request it was not sent."""

from __future__ import annotations

from typing import Any, cast

from mcp.shared.dispatcher import DispatchContext

from gateway.relay import ProgressRoutes


def test_a_token_routes_back_only_from_the_server_it_went_to_and_only_while_the_request_lasts() -> None:
    client = cast(DispatchContext[Any], object())
    one, other = ProgressRoutes(), ProgressRoutes()  # run mode keeps one per server
    params = {"name": "slow", "_meta": {"progressToken": 7, "trace": "t"}}
    with one.route(client, params) as sent:
        assert sent is not None
        token = sent["_meta"]["progressToken"]
        assert isinstance(token, str) and token != 7 and sent["_meta"]["trace"] == "t"
        report = {"progressToken": token, "progress": 1, "total": 2, "phase": "copy"}
        assert one.reported(report) == (client, {**report, "progressToken": 7})
        assert other.reported(report) is None  # another server, even knowing the token
        with other.route(client, params) as elsewhere:
            assert elsewhere is not None and elsewhere["_meta"]["progressToken"] != token  # not guessable from it
    assert one.reported(report) is None  # the answer has gone: late reports go nowhere
    with one.route(client, {"name": "quick"}) as untouched:
        assert untouched == {"name": "quick"}  # no token asked for, none sent
