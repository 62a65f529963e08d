"""The `mcp-gateway policy …` commands as a user runs them: a subprocess, files on disk, exit codes.

The LLM (compiler and judge) is a scripted OpenAI-compatible server on loopback, reached through
litellm; everything else is real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ..llm_server import scripted_llm_server
from .test_llm_litellm import judge_reply

pytestmark = pytest.mark.integration

TRANSFERS = """---
applies_to: [tool_call]
tools: ["transfer*"]
rules: transfers.rules.yaml
---
# No large transfers

Never move more than 1,000 dollars in one transfer.

## Violations
- transfer {"amount": 5000, "to": "acct-9"}

## Allowed
- transfer {"amount": 999, "to": "acct-9"}
"""
TRANSFER_RULES = """decide: true
rules:
  - id: over-limit
    description: more than 1,000 dollars
    when: {path: arguments.amount, op: gt, value: 1000}
    effect: violate
"""
REFUNDS = """---
applies_to: [tool_result]
on_error: allow
---
# No refund promises

Tool results must never promise a customer a refund.
"""
CONTRADICTED = """---
applies_to: [tool_call]
rules: bad.rules.yaml
---
Never delete anything.

## Allowed
- delete_file {"path": "tmp.txt"}
"""
BAD_RULES = (
    "rules:\n"
    "  - {id: all-deletes, description: every delete,\n"
    "     when: {path: tool, op: equals, value: delete_file}, effect: violate}\n"
)


def _run(
    args: list[str], tmp_path: Path, stdin: str | None = None, timeout: float = 300, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "no-config.toml").touch()
    env = {
        **os.environ,
        "MCP_GATEWAY_CACHE_DIR": str(tmp_path / "cache"),
        "MCP_GATEWAY_CONFIG": str(tmp_path / "no-config.toml"),
        "MCP_GATEWAY_AUDIT_DB": str(tmp_path / "audit.db"),
        "MCP_GATEWAY_PINS_DB": str(tmp_path / "pins.db"),
        **env_extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _compiled_transfers(tmp_path: Path) -> Path:
    """A policies folder holding the transfers policy and its rules, compiled offline."""
    policies = tmp_path / "policies"
    _write(policies, "transfers.md", TRANSFERS)
    _write(policies, "transfers.rules.yaml", TRANSFER_RULES)
    assert _run(["policy", "compile", str(policies), "--offline"], tmp_path).returncode == 0
    return policies


def test_compile_writes_locks_skips_unchanged_ones_and_check_reports_stale(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    _write(policies, "transfers.md", TRANSFERS)
    _write(policies, "transfers.rules.yaml", TRANSFER_RULES)
    first = _run(["policy", "compile", str(policies), "--offline", "--json"], tmp_path)
    assert first.returncode == 0, first.stderr
    [entry] = json.loads(first.stdout)["policies"]
    assert entry["id"] == "transfers" and Path(entry["lock"]).exists()
    assert "left out: rules generated from the English" in first.stderr

    again = _run(["policy", "compile", str(policies), "--offline", "--json"], tmp_path)
    assert json.loads(again.stdout)["policies"][0]["status"] == "unchanged"
    fresh = _run(["policy", "compile", str(policies), "--check"], tmp_path)
    assert fresh.returncode == 0 and "fresh" in fresh.stderr

    _write(policies, "transfers.rules.yaml", TRANSFER_RULES.replace("1000", "2000"))
    stale = _run(["policy", "compile", str(policies), "--check", "--json"], tmp_path)
    assert stale.returncode == 1
    assert json.loads(stale.stdout)["policies"][0]["status"] == "stale"
    assert "run 'mcp-gateway policy compile'" in stale.stderr

    # A hand-edited lock that no longer loads is replaced by a compile, and kept beside it.
    lock = Path(entry["lock"])
    broken = lock.read_text().replace('"action": "block"', '"action": "blok"')
    assert broken != lock.read_text()
    lock.write_text(broken)
    mended = _run(["policy", "compile", str(policies), "--offline"], tmp_path)
    assert mended.returncode == 0, mended.stderr
    assert Path(str(lock) + ".invalid").read_text() == broken and "kept as" in mended.stderr
    assert '"action": "block"' in lock.read_text()


def test_compile_goes_on_past_a_policy_that_cannot_be_compiled_and_exits_3(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    _write(policies, "bad.md", CONTRADICTED)
    _write(policies, "bad.rules.yaml", BAD_RULES)
    _write(policies, "transfers.md", TRANSFERS)
    _write(policies, "transfers.rules.yaml", TRANSFER_RULES)
    result = _run(["policy", "compile", str(policies), "--offline", "--json"], tmp_path)
    assert result.returncode == 3, result.stderr
    by_id = {p["id"]: p for p in json.loads(result.stdout)["policies"]}
    assert by_id["bad"]["status"] == "failed"
    assert "hand-written rule 'all-deletes'" in by_id["bad"]["error"]
    assert not (policies / "bad.lock.json").exists()
    assert (policies / "transfers.lock.json").exists()
    assert "1 policy file(s) failed to compile (bad)" in result.stderr


def test_compile_with_a_model_that_never_answers_names_the_timeout_and_stops(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    _write(policies, "refunds.md", REFUNDS)
    _write(policies, "zz-later.md", REFUNDS.replace("refund", "discount"))
    with scripted_llm_server() as server:
        server.hang = threading.Event()
        result = _run(
            [
                "policy",
                "compile",
                str(policies),
                "--model",
                "openai/scripted",
                "--api-base",
                f"{server.url}/v1",
                "--timeout",
                "2",
            ],
            tmp_path,
        )
    assert result.returncode == 3
    assert "did not answer within 2 s" in result.stderr and "--timeout" in result.stderr
    assert not (policies / "refunds.lock.json").exists()
    # A model that is down fails every policy alike: the command stops instead of waiting out each one.
    assert "compiling refunds" in result.stderr and "compiling zz-later" not in result.stderr


def test_check_and_explain_decide_a_subject_from_stdin(tmp_path: Path) -> None:
    policies = _compiled_transfers(tmp_path)
    subject = json.dumps({"kind": "tool_call", "tool": "transfer", "arguments": {"amount": "$7,500"}})
    checked = _run(["policy", "check", "--no-builtin", "--policies", str(policies), "--no-judge"], tmp_path, subject)
    assert checked.returncode == 0, checked.stderr
    [verdict] = json.loads(checked.stdout)["verdicts"]
    assert (verdict["policy"], verdict["outcome"], verdict["tier"]) == ("transfers", "violation", "rules")
    assert "over-limit" in verdict["reason"]

    explained = _run(
        ["policy", "explain", "--no-builtin", "--policies", str(policies), "--no-judge"], tmp_path, subject
    )
    assert explained.returncode == 0, explained.stderr
    assert "transfers: VIOLATION" in explained.stdout and "rules" in explained.stdout

    small = json.dumps({"kind": "tool_call", "tool": "transfer", "arguments": {"amount": 20}})
    allowed = _run(["policy", "check", "--no-builtin", "--policies", str(policies), "--no-judge"], tmp_path, small)
    assert json.loads(allowed.stdout)["verdicts"][0]["outcome"] == "allow"

    broken = _run(["policy", "check", "--no-builtin", "--policies", str(policies)], tmp_path, '{"kind": "tool_call",\n')
    assert broken.returncode == 2
    assert "stdin:2:" in broken.stderr and "not valid JSON" in broken.stderr
    wrong = _run(["policy", "check", "--no-builtin", "--policies", str(policies)], tmp_path, '{"kind": "nope"}')
    assert wrong.returncode == 2 and "field 'kind'" in wrong.stderr


def _transfer_cases(directory: Path) -> tuple[Path, Path]:
    yaml_cases = _write(
        directory,
        "hand.yaml",
        "cases:\n"
        "  - {id: big, policy: transfers, kind: tool_call, tool: transfer,\n"
        "     arguments: {amount: 5000}, expect: violation}\n"
        "  - {id: small, policy: transfers, kind: tool_call, tool: transfer,\n"
        "     arguments: {amount: 50}, expect: allow}\n",
    )
    rows = [
        {
            "id": f"bulk-{amount}",
            "policy": "transfers",
            "kind": "tool_call",
            "tool": "transfer",
            "arguments": {"amount": amount},
            "expect": expect,
        }
        for amount, expect in (
            (1500, "violation"),
            (999, "allow"),
            (30000, "violation"),
            (1000, "allow"),
            # labelled by a careless annotator: the rules say allow
            (900, "violation"),
        )
    ]
    jsonl = _write(directory, "bulk.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    return yaml_cases, jsonl


def test_policy_test_reports_metrics_as_json_and_junit_with_ci_exit_codes(tmp_path: Path) -> None:
    policies = _compiled_transfers(tmp_path)
    yaml_cases, jsonl = _transfer_cases(tmp_path / "cases")

    # Hand-written cases all pass, the bulk set has one wrong label: exit 0 unless a threshold is set.
    report = _run(
        [
            "policy",
            "test",
            str(policies),
            "--cases",
            str(yaml_cases),
            "--cases",
            str(jsonl),
            "--format",
            "json",
            "--no-judge",
        ],
        tmp_path,
    )
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    metrics = data["policies"]["transfers"]
    assert {k: metrics[k] for k in ("tp", "fp", "tn", "fn")} == {"tp": 3, "fp": 0, "tn": 3, "fn": 1}
    assert metrics["precision"] == 1.0 and metrics["recall"] == pytest.approx(0.75)
    assert metrics["f1"] == pytest.approx(6 / 7, abs=1e-3)
    assert {c["id"]: (c["expected"], c["got"], c["tier"]) for c in data["cases"]}["bulk-900"] == (
        "violation",
        "allow",
        "rules",
    )
    assert all(isinstance(c["latency_ms"], float) for c in data["cases"])
    assert "FAIL bulk-900: expected violation, got allow" in report.stderr

    strict = _run(["policy", "test", str(policies), "--cases", str(jsonl), "--no-judge", "--min-f1", "0.9"], tmp_path)
    assert strict.returncode == 1
    assert "THRESHOLD transfers: F1 0.800 is below 0.9" in strict.stderr

    junit = _run(["policy", "test", str(policies), "--cases", str(jsonl), "--no-judge", "--format", "junit"], tmp_path)
    suite = ET.fromstring(junit.stdout).find("testsuite")
    assert suite is not None and suite.get("name") == "transfers"
    assert (suite.get("tests"), suite.get("failures")) == ("5", "1")

    # A case id with a control character still gives well-formed XML.
    odd = _write(tmp_path / "cases", "odd.jsonl", jsonl.read_text().replace('"bulk-900"', '"bulk\\u0007900"'))
    assert "\\u0007" in odd.read_text()
    odd_junit = _run(
        ["policy", "test", str(policies), "--cases", str(odd), "--no-judge", "--format", "junit"], tmp_path
    )
    assert ET.fromstring(odd_junit.stdout).find("testsuite") is not None

    # A hand-written case that fails makes the run fail, whatever the metrics.
    _write(tmp_path / "cases", "hand.yaml", yaml_cases.read_text().replace("amount: 50}", "amount: 50000}"))
    failing = _run(["policy", "test", str(policies), "--cases", str(yaml_cases), "--no-judge", "-q"], tmp_path)
    assert failing.returncode == 1 and "FAIL small" in failing.stderr and "PASS" not in failing.stderr

    parallel = _run(
        ["policy", "test", str(policies), "--cases", str(jsonl), "--no-judge", "--format", "json", "--workers", "3"],
        tmp_path,
    )
    assert {c["id"]: c["got"] for c in json.loads(parallel.stdout)["cases"]} == {
        c["id"]: c["got"] for c in data["cases"] if c["id"].startswith("bulk-")
    }


def _judged_test(policies: Path, cases: Path, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`policy test` on `cases` with the scripted judge model named, plus `options`."""
    return _run(
        ["policy", "test", str(policies), "--cases", str(cases), "--judge-model", "openai/scripted", *options],
        tmp_path,
    )


PROMISE = (
    "  - {id: promise, policy: refunds, kind: tool_result, tool: crm,\n"
    "     text: 'We will refund the full amount today.', expect: violation}\n"
)
FORWARD = (
    "  - {id: forward, policy: refunds, kind: tool_result, tool: crm,\n"
    "     text: 'Your message was forwarded to billing.', expect: allow}\n"
)


JSON_AT = ("--format", "json", "--judge-api-base")  # JSON out, the judge at the URL that follows


def _refund_suite(tmp_path: Path, *cases: str) -> tuple[Path, Path]:
    """The refunds policy compiled offline (its judge does the work), and a case file of `cases`."""
    policies = tmp_path / "policies"
    _write(policies, "refunds.md", REFUNDS)
    assert _run(["policy", "compile", str(policies), "--offline"], tmp_path).returncode == 0
    return policies, _write(tmp_path, "cases.yaml", "cases:\n" + "".join(cases))


def test_policy_test_records_judge_answers_and_replays_them_offline(tmp_path: Path) -> None:
    policies, cases = _refund_suite(tmp_path, PROMISE, FORWARD)
    cassette = tmp_path / "judge.jsonl"
    with scripted_llm_server() as server:
        server.script("refund the full amount", judge_reply(True)).script("forwarded to billing", judge_reply(False))
        recorded = _judged_test(policies, cases, tmp_path, *JSON_AT, f"{server.url}/v1", "--record", str(cassette))
        asked = len(server.requests)
    assert recorded.returncode == 0, recorded.stderr
    first = json.loads(recorded.stdout)
    assert first["policies"]["refunds"]["judge_calls"] == 2 and asked == 2
    assert {c["id"]: (c["got"], c["tier"]) for c in first["cases"]} == {
        "promise": ("violation", "judge"),
        "forward": ("allow", "judge"),
    }
    assert cassette.exists()

    # Replayed with nothing listening: the same decisions, from the cassette alone.
    replayed = _judged_test(policies, cases, tmp_path, *JSON_AT, "http://127.0.0.1:9/v1", "--replay", str(cassette))
    assert replayed.returncode == 0, replayed.stderr
    assert [(c["id"], c["got"]) for c in json.loads(replayed.stdout)["cases"]] == [
        (c["id"], c["got"]) for c in first["cases"]
    ]

    # A question the cassette does not hold is an error, not a silent guess.
    more = _write(
        tmp_path,
        "more.yaml",
        cases.read_text() + "  - {id: new, policy: refunds, kind: tool_result, tool: crm, "
        "text: 'A new answer nobody recorded.', expect: allow}\n",
    )
    missing = _judged_test(policies, more, tmp_path, "--replay", str(cassette))
    assert missing.returncode == 3 and "not in the cassette" in missing.stderr


def test_tune_calibrates_thresholds_on_dev_cases_and_writes_them_into_the_lock(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    source = _write(
        policies,
        "shouting.md",
        "---\napplies_to: [tool_result]\njudge: never\n---\nResults must not insult the reader.\n\n"
        '## Violations\n- "You are an idiot and your code is garbage."\n- "Only a moron would ask this."\n\n'
        '## Allowed\n- "Your code compiles and all tests pass."\n- "The report is attached."\n',
    )
    # Exit 1: offline, four examples do not classify each other well; the lock is written all the same.
    assert _run(["policy", "compile", str(policies), "--offline"], tmp_path).returncode in (0, 1)
    lock = policies / "shouting.lock.json"
    before = json.loads(lock.read_text())["classifier"]["thresholds"]
    texts: list[tuple[str, str]] = [
        ("You absolute fool, nobody wants your stupid questions.", "violation"),
        ("What a worthless idiot you are.", "violation"),
        ("Shut up, you pathetic clown.", "violation"),
        ("Your brain must be empty, you imbecile.", "violation"),
        ("Go away, you useless, brainless loser.", "violation"),
        ("The deployment finished at 10:42 without errors.", "allow"),
        ("Three files changed, 40 insertions, 2 deletions.", "allow"),
        ("The meeting is moved to Thursday.", "allow"),
        ("Invoice 1182 is paid.", "allow"),
        ("The build is green on every platform.", "allow"),
        ("Here are the search results for 'python decorators'.", "allow"),
    ]
    rows: list[dict[str, Any]] = [
        {"id": f"dev-{i}", "kind": "tool_result", "text": text, "expect": expect, "split": "dev"}
        for i, (text, expect) in enumerate(texts)
    ]
    dev = _write(tmp_path, "dev.jsonl", "".join(json.dumps(row) + "\n" for row in rows))

    dry = _run(
        ["policy", "tune", str(source), "--cases", str(dev), "--target-fpr", "0.0", "--dry-run", "--json"], tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["policy"] == "shouting" and report["dev"]["fpr"] == 0.0
    assert json.loads(lock.read_text())["classifier"]["thresholds"] == before  # a dry run writes nothing

    tuned = _run(["policy", "tune", str(source), "--cases", str(dev), "--target-fpr", "0.0", "--json"], tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    written = json.loads(lock.read_text())["classifier"]
    assert written["thresholds"] == json.loads(tuned.stdout)["after"] != before
    assert written["thresholds_source"] == "tuned"

    # compiling the policy again replaces the tuned thresholds: said, with what to do
    source.write_text(source.read_text(encoding="utf-8") + '- "Nobody reads your reports, clown."\n', encoding="utf-8")
    again = _run(["policy", "compile", str(policies), "--offline"], tmp_path)
    assert "the lock held thresholds tuned with 'policy tune'" in again.stderr, again.stderr
    assert "policy tune" in again.stderr.split("WARNING   shouting:")[1]


def test_doctor_checks_the_judge_with_canary_questions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with scripted_llm_server() as server:
        server.script("wire 5,000 dollars", judge_reply(True)).script("weather in Paris", judge_reply(False))
        result = _doctor(tmp_path, home, ["--judge-model", "openai/scripted", "--judge-api-base", f"{server.url}/v1"])
    judge = [c for c in json.loads(result.stdout)["checks"] if c["area"] == "judge"]
    assert [c["status"] for c in judge] == ["ok", "ok", "ok"], judge
    assert "violates (right)" in judge[1]["detail"] and "allows (right)" in judge[2]["detail"]

    with scripted_llm_server() as server:
        server.script("wire 5,000 dollars", judge_reply(False)).script("weather in Paris", judge_reply(False))
        wrong = _doctor(tmp_path, home, ["--judge-model", "openai/scripted", "--judge-api-base", f"{server.url}/v1"])
    assert wrong.returncode == 1
    checks = [c for c in json.loads(wrong.stdout)["checks"] if c["area"] == "judge"]
    assert checks[1]["status"] == "fail" and "WRONG" in checks[1]["detail"] and "larger judge model" in checks[1]["fix"]

    down = _doctor(tmp_path, home, ["--judge-model", "openai/scripted", "--judge-api-base", "http://127.0.0.1:9/v1"])
    assert down.returncode == 1
    [check] = [c for c in json.loads(down.stdout)["checks"] if c["area"] == "judge"]
    assert "is not reachable" in check["detail"] and "start the model server" in check["fix"]


def _doctor(tmp_path: Path, home: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return _run(
        ["doctor", "--no-start", "--project", str(tmp_path), "--json", *args],
        tmp_path,
        timeout=600,
        HOME=str(home),
        APPDATA=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        MCP_GATEWAY_JUDGE__TIMEOUT_S="30",
    )


def test_tune_refuses_a_directory_and_a_rate_outside_zero_to_one(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    _write(policies, "transfers.md", TRANSFERS)
    cases = _write(tmp_path, "dev.jsonl", '{"id": "a", "kind": "tool_result", "text": "x", "expect": "allow"}\n')
    for args, says in [
        ([str(policies)], "pass its source file"),
        ([str(policies / "transfers.md"), "--target-fpr", "nan"], "from 0 up to"),
        ([str(policies / "transfers.md"), "--target-fpr", "7"], "from 0 up to"),
        ([str(policies / "transfers.md"), "--target-fpr", "-1"], "from 0 up to"),
    ]:
        done = _run(["policy", "tune", *args, "--cases", str(cases), "--dry-run"], tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr


def test_tune_says_why_it_cannot_tune_instead_of_failing_inside(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2] / "policies"
    descriptions = _write(
        tmp_path,
        "descriptions.jsonl",
        "".join(
            json.dumps({"id": f"d{i}", "kind": "tool_description", "text": f"Lists item {i}.", "expect": expect}) + "\n"
            for i, expect in enumerate(["violation", "allow"] * 6)
        ),
    )
    for args, says in [
        # no case of content-safety's kinds: the count and the reason, not a numpy error
        ([str(repo / "content-safety.md")], "got 0 and 0 (none of the 12 cases given is of its kinds"),
        # a policy that has no classifier
        ([str(repo / "pii.md")], "policy 'pii' has no classifier to tune"),
        ([str(repo / "content-safety.md"), "--split", "nonsense"], "--split 'nonsense': use train, dev or test"),
    ]:
        done = _run(["policy", "tune", *args, "--cases", str(descriptions), "--dry-run"], tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_policy_test_refuses_cases_that_could_not_test_what_they_say(tmp_path: Path) -> None:
    policies = _compiled_transfers(tmp_path)
    call = {"kind": "tool_call", "tool": "transfer", "arguments": {"amount": 5}, "expect": "allow"}
    refusals = [
        # a policy that is not loaded, named where the case is
        ([{"id": "a", **call}, {"id": "b", "policy": "nope", **call}], "cases.jsonl:2: case 'b' names policy 'nope'"),
        # a kind the policy never sees would pass as an allow
        (
            [{"id": "c", "policy": "transfers", "kind": "tool_result", "text": "x", "expect": "allow"}],
            "cases.jsonl:1: case 'c' gives policy 'transfers' a tool_result, but the policy applies only to tool_call",
        ),
    ]
    for rows, says in refusals:
        cases = _write(tmp_path, "cases.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        done = _run(["policy", "test", str(policies), "--cases", str(cases), "--no-judge"], tmp_path)
        assert done.returncode == 2 and says in done.stderr, done.stderr

    # the same id in two files
    one = _write(tmp_path, "one.jsonl", json.dumps({"id": "same", **call}) + "\n")
    two = _write(tmp_path, "two.yaml", "cases:\n  - {id: same, kind: tool_call, tool: transfer, expect: allow}\n")
    done = _run(["policy", "test", str(policies), "--cases", str(one), "--cases", str(two), "--no-judge"], tmp_path)
    assert done.returncode == 2 and "two.yaml:2: case id 'same' is also used at" in done.stderr, done.stderr

    # a policy's own case file passed again with --cases is read once
    own = _write(
        policies, "transfers.cases.yaml", "cases:\n  - {id: own, kind: tool_call, tool: transfer, expect: allow}\n"
    )
    done = _run(["policy", "test", str(policies), "--cases", str(own), "--no-judge", "--format", "json"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert [c["id"] for c in json.loads(done.stdout)["cases"]] == ["own"]

    # a case file with no case, and a result case with nothing to check
    empty = _write(tmp_path, "empty.jsonl", "\n")
    done = _run(["policy", "test", str(policies), "--cases", str(empty), "--no-judge"], tmp_path)
    assert done.returncode == 2 and "empty.jsonl holds no cases" in done.stderr, done.stderr
    blank = _write(tmp_path, "blank.jsonl", json.dumps({"id": "b", "kind": "tool_result", "expect": "allow"}) + "\n")
    done = _run(["policy", "test", str(policies), "--cases", str(blank), "--no-judge"], tmp_path)
    assert done.returncode == 2 and "blank.jsonl:1: case 'b' is a tool_result with no text" in done.stderr

    # no policy at all, and thresholds that are no rates
    (tmp_path / "empty").mkdir()
    for args, says in [
        (["policy", "test", str(tmp_path / "empty"), "--cases", str(one)], "no policies found in"),
        (["policy", "test", str(policies), "--min-f1", "nan"], "--min-f1 nan: give a rate from 0 to 1"),
        (["policy", "test", str(policies), "--max-fpr", "5"], "--max-fpr 5.0: give a rate from 0 to 1"),
    ]:
        done = _run(args, tmp_path)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_a_threshold_the_cases_cannot_measure_fails_and_reads_undefined(tmp_path: Path) -> None:
    policies = _compiled_transfers(tmp_path)
    allowed = _write(
        tmp_path,
        "allowed.jsonl",
        json.dumps(
            {
                "id": "small",
                "policy": "transfers",
                "kind": "tool_call",
                "tool": "transfer",
                "arguments": {"amount": 5},
                "expect": "allow",
            }
        )
        + "\n",
    )
    done = _run(
        ["policy", "test", str(policies), "--cases", str(allowed), "--no-judge", "--min-f1", "0.9", "--format", "json"],
        tmp_path,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    metrics = report["policies"]["transfers"]
    assert (metrics["precision"], metrics["recall"], metrics["f1"], metrics["fpr"]) == (None, None, None, 0.0)
    assert report["threshold_problems"] == [
        "transfers: F1 cannot be measured (no violation case); add some or drop the threshold"
    ]


def test_replay_asks_as_the_recorded_model_and_a_failing_judge_fails_the_run(tmp_path: Path) -> None:
    policies, cases = _refund_suite(tmp_path, PROMISE)
    cassette = tmp_path / "judge.jsonl"
    base = ["policy", "test", str(policies), "--cases", str(cases), "--format", "json"]
    with scripted_llm_server() as server:
        server.script("refund the full amount", judge_reply(True))
        # a model whose price litellm knows: the run reports what the judge cost
        recorded = _run(
            [
                *base,
                "--judge-model",
                "openai/gpt-4o-mini",
                "--judge-api-base",
                f"{server.url}/v1",
                "--record",
                str(cassette),
            ],
            tmp_path,
        )
    assert recorded.returncode == 0, recorded.stderr
    assert json.loads(recorded.stdout)["policies"]["refunds"]["judge_cost_usd"] > 0
    assert json.loads(cassette.read_text().splitlines()[0])["model"] == "openai/gpt-4o-mini"

    # no --judge-model: the replay asks as the model the answers were recorded with
    replayed = _run([*base, "--replay", str(cassette)], tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert [(c["id"], c["got"], c["tier"]) for c in json.loads(replayed.stdout)["cases"]] == [
        ("promise", "violation", "judge")
    ]
    other = _run([*base, "--replay", str(cassette), "--judge-model", "openai/other"], tmp_path)
    assert other.returncode == 2 and "was recorded with --judge-model openai/gpt-4o-mini" in other.stderr

    # a cassette record the judge could not read back is refused where it is
    cassette.write_text(json.dumps({"key": "judge:x", "verdict": {}}) + "\n")
    broken = _run([*base, "--replay", str(cassette)], tmp_path)
    assert broken.returncode == 2 and "judge.jsonl:1: not a cassette record: 'verdict.violates'" in broken.stderr

    # a judge that cannot be reached: the policy's on_error decided, so the run is no measurement
    down = _run([*base, "--judge-model", "openai/gpt-4o-mini", "--judge-api-base", "http://127.0.0.1:9/v1"], tmp_path)
    assert down.returncode == 3, down.stderr
    assert "1 case(s) were decided by on_error because a tier failed, first 'promise'" in down.stderr
