"""The run-mode shim used to drive the fidelity harness through `mcp-gateway run`."""

from __future__ import annotations

from evals.bench.prefix_shim import Shim


def test_names_and_uris_get_the_prefix_going_in_and_lose_it_coming_out() -> None:
    shim = Shim("everything")
    call = shim.inbound({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}})
    read = shim.inbound({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "demo://a"}})
    ref = {"type": "ref/prompt", "name": "p"}
    shim.inbound({"jsonrpc": "2.0", "id": 3, "method": "completion/complete", "params": {"ref": ref}})
    shim.inbound({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
    assert call["params"]["name"] == "everything__echo"
    assert read["params"]["uri"] == "everything+demo://a"
    assert ref["name"] == "everything__p"
    listed = shim.outbound({"jsonrpc": "2.0", "id": 4, "result": {"tools": [{"name": "everything__echo"}]}})
    assert listed["result"]["tools"] == [{"name": "echo"}]
    linked = shim.outbound(
        {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "resource_link", "uri": "everything+demo://b"}]}}
    )
    assert linked["result"]["content"][0]["uri"] == "demo://b"
    note = shim.outbound({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                          "params": {"uri": "everything+demo://c"}})
    assert note["params"]["uri"] == "demo://c"
    assert shim.outbound({"jsonrpc": "2.0", "id": 9, "result": {"name": "everything__x"}})["result"] == {
        "name": "everything__x"  # a name in an answer to something else is left as it is
    }
