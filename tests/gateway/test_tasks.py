"""Tasks through the gateway: their status lines are masked wherever they appear, and a task's result
is checked as the result of the tool that started it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from policy.conditions import AllOf, Predicate, Rule
from policy.subject import SubjectKind
from policy.verdict import Action

from .relay_support import RAW_SERVER, RawSession, gateway_env, raw_entry, write_mcp_json, write_rule_policy

TOKEN = "ghp_" + "R8kQ2mX7vLp4Tz9Wc3Nf6Hb1Yd5Gs0Ja8KuE"


def _policies(tmp: Path) -> Path:
    directory = tmp / "policies"
    # masks only in what 'tasky' returns: a task's status is masked only where it is known to be tasky's
    write_rule_policy(directory, "tasky-secrets", "Mask secrets tasky returns.", [],
                      [SubjectKind.TOOL_RESULT], action=Action.MASK, tools=["tasky"], detectors=["secrets"])
    # scoped to the tool 'tasky': it can only act on a task's result if that result is known to be tasky's
    rule = Rule(id="classified", description="says classified", when=Predicate(path="text", op="contains",
                                                                              value="classified"))
    write_rule_policy(directory, "tasky-classified", "tasky may not return classified text.", [rule],
                      [SubjectKind.TOOL_RESULT], tools=["tasky"])
    # names no tool: it reads every task in the list once, with the whole list
    write_rule_policy(directory, "all-secrets", "Mask secrets anywhere.", [], [SubjectKind.TOOL_RESULT],
                      action=Action.MASK, detectors=["secrets"])
    return directory


def _gateway(tmp: Path, mode: str, policies: Path) -> tuple[list[str], str]:
    """The gateway's arguments in `mode` (wrap, or run over an mcp.json) in front of the raw server with
    `policies`, and the name the client calls its tool 'tasky' by."""
    if mode == "wrap":
        return ["wrap", "--name", "raw", "--no-builtin", "--policies", str(policies), "--", *RAW_SERVER], "tasky"
    config = write_mcp_json(tmp, {"raw": raw_entry()})
    return ["run", "--mcp-json-path", str(config), "--no-builtin", "--policies", str(policies)], "raw__tasky"


@pytest.mark.parametrize("mode", ["wrap", "run"])
def test_task_status_lines_are_masked_and_a_tasks_result_is_checked_as_its_tools(tmp_path: Path, mode: str) -> None:
    policies = _policies(tmp_path)
    argv, tool = _gateway(tmp_path, mode, policies)
    session = RawSession(argv, {**gateway_env(tmp_path), "RAW_SERVER_TASK_NOTE": f"pushed with {TOKEN}"})
    try:
        task = {"ttl": 60000}
        started = session.ask("tools/call", {"name": tool, "arguments": {"text": "classified plans"}, "task": task})
        plain = session.ask("tools/call", {"name": tool, "arguments": {"text": "open plans"}, "task": task})
        task_id, plain_id = started["result"]["task"]["taskId"], plain["result"]["task"]["taskId"]
        status = session.ask("tasks/get", {"taskId": task_id})
        listed = session.ask("tasks/list", {})
        outcome = session.ask("tasks/result", {"taskId": task_id})
        plain_outcome = session.ask("tasks/result", {"taskId": plain_id})
    finally:
        session.close()
    statuses = [note["params"] for note in session.notes if note["method"] == "notifications/tasks/status"]

    masked = "finished: pushed with [MASKED:github-token]"
    assert started["result"]["task"]["statusMessage"] == masked
    assert status["result"]["statusMessage"] == masked
    assert [task["statusMessage"] for task in listed["result"]["tasks"]] == [masked, masked]
    # the status notifications too, under the ids the client knows
    assert [(note["taskId"], note["statusMessage"]) for note in statuses] == [(task_id, masked), (plain_id, masked)]
    assert TOKEN not in json.dumps([started, status, listed, statuses])
    # the tool-scoped policy applies to the task's result as it would to the tool's direct answer
    assert outcome["result"]["isError"] is True
    assert "tasky-classified" in outcome["result"]["content"][0]["text"]
    assert plain_outcome["result"]["content"][0]["text"] == "task said open plans"
    # a policy that names no tool read the two listed tasks in the list, and not once more each as tasky's
    # (as a tasks/get): its tasks/get row is that of the one tasks/get the client sent
    with sqlite3.connect(tmp_path / "audit.db") as db:
        rows = db.execute("SELECT method, applied FROM decisions WHERE policy = 'all-secrets'").fetchall()
    assert [row for row in rows if row[0] in ("tasks/get", "tasks/list")] == [
        ("tasks/get", "mask"),
        ("tasks/list", "mask"),
    ], rows


@pytest.mark.parametrize("mode", ["wrap", "run"])
def test_a_tasks_result_is_judged_with_the_arguments_of_the_call_that_started_it(tmp_path: Path, mode: str) -> None:
    directory = tmp_path / "policies"
    # on the text and the arguments: the task handle a call answers with has no text, its result has
    rule = Rule(id="apollo", description="plans of project apollo",
                when=AllOf(all=[Predicate(path="arguments.project", op="equals", value="apollo"),
                                Predicate(path="text", op="contains", value="plans")]))
    write_rule_policy(directory, "no-apollo", "No plans of project apollo may come back from tasky.", [rule],
                      [SubjectKind.TOOL_RESULT], tools=["tasky"])
    argv, tool = _gateway(tmp_path, mode, directory)
    session = RawSession(argv, gateway_env(tmp_path))
    try:
        task = {"ttl": 60000}
        apollo = session.ask("tools/call", {"name": tool, "arguments": {"text": "plans", "project": "apollo"},
                                            "task": task})
        gemini = session.ask("tools/call", {"name": tool, "arguments": {"text": "plans", "project": "gemini"},
                                            "task": task})
        blocked = session.ask("tasks/result", {"taskId": apollo["result"]["task"]["taskId"]})
        passed = session.ask("tasks/result", {"taskId": gemini["result"]["task"]["taskId"]})
    finally:
        session.close()

    assert blocked["result"]["isError"] is True and "no-apollo" in blocked["result"]["content"][0]["text"]
    assert passed["result"]["content"][0]["text"] == "task said plans"
