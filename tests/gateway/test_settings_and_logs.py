from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gateway.audit import AuditLog, AuditRow
from gateway.errors import ConfigError
from gateway.settings import load_settings

from .relay_support import HELLO, RAW_SERVER, write_mcp_json


def test_options_beat_the_environment_which_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('request_timeout_s = 5\n[judge]\nmodel = "ollama_chat/from-file"\ntimeout_s = 7\n',
                      encoding="utf-8")
    monkeypatch.setenv("MCP_GATEWAY_JUDGE__MODEL", "ollama_chat/from-env")
    settings = load_settings(config, request_timeout_s=9)
    assert settings.request_timeout_s == 9
    assert settings.judge.model == "ollama_chat/from-env"
    assert settings.judge.timeout_s == 7


def test_a_typo_in_the_settings_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("request_timout_s = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="request_timout_s") as caught:
        load_settings(config)
    assert str(config) in str(caught.value)
    config.write_text("request_timeout_s = [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def _row(policy: str, applied: str, server: str = "srv", excerpt: str = "", cache_hit: bool = False) -> AuditRow:
    return AuditRow(ts=time.time(), session="s1", server=server, method="tools/call", tool="t", kind="tool_result",
                    policy=policy, outcome="violation" if applied != "allow" else "allow", action="block",
                    applied=applied, tier="rules", score=1.0, reason="because", latency_ms=0.5, cache_hit=cache_hit,
                    judge_model=None, evidence="[]", excerpt=excerpt, trace="[]")


def test_logs_filters_and_prints_json_lines(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = AuditLog(db)
    log.record([_row("secrets", "mask", excerpt="key=[MASKED:aws]"), _row("pii", "allow"),
                _row("prompt-injection", "block", server="web"), _row("prompt-injection", "block", "web", "", True)])
    log.close()
    env = {"MCP_GATEWAY_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "gateway", "logs", "--db", str(db), "--violations", "--json"],
                            capture_output=True, text=True, timeout=60, env={**_base_env(), **env})
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["policy"] for row in rows] == ["secrets", "prompt-injection", "prompt-injection"]
    assert rows[0]["excerpt"] == "key=[MASKED:aws]" and [row["cache_hit"] for row in rows] == [False, False, True]
    result = subprocess.run([sys.executable, "-m", "gateway", "logs", "--db", str(db), "--server", "web"],
                            capture_output=True, text=True, timeout=60, env={**_base_env(), **env})
    assert "prompt-injection" in result.stderr and "secrets" not in result.stderr
    # a verdict reused (a short message met again) or answered from the judge's cache says so
    lines = [line for line in result.stderr.splitlines() if "prompt-injection" in line]
    assert len(lines) == 2 and sum(" cached " in line for line in lines) == 1, lines
    missing = subprocess.run([sys.executable, "-m", "gateway", "logs", "--db", str(tmp_path / "nope.db")],
                             capture_output=True, text=True, timeout=60, env={**_base_env(), **env})
    assert missing.returncode == 2 and "no audit log yet" in missing.stderr


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_rows_recorded_one_message_at_a_time_are_written_in_few_transactions_and_none_lost(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = AuditLog(db)
    statements: list[str] = []
    log._connection.set_trace_callback(statements.append)  # the writer thread's connection
    started = time.monotonic()
    for index in range(300):
        log.record([_row("secrets", "allow", server=f"s{index}")])
        time.sleep(0.0005)  # a message every half millisecond, as a busy relay sends them
    log.close()
    elapsed = time.monotonic() - started

    reader = sqlite3.connect(db)
    assert reader.execute("SELECT count(*) FROM decisions").fetchone() == (300,)
    commits = sum(1 for sql in statements if sql.strip().upper().startswith("COMMIT"))
    assert 1 <= commits < 60  # one transaction per write interval, not one per message
    assert elapsed < 5.0  # closing does not wait an interval per row


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60,
                          env={**_base_env(), "MCP_GATEWAY_CONFIG": str(tmp_path / "none.toml"), **env})


def test_a_list_setting_given_as_a_plain_environment_value_is_a_message_saying_how(tmp_path: Path) -> None:
    done = _cli(tmp_path, "logs", "--db", str(tmp_path / "a.db"), MCP_GATEWAY_DISABLE="secrets")
    assert done.returncode == 2
    assert "cannot read MCP_GATEWAY_DISABLE" in done.stderr and "JSON" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("content", [b"\x00\x01 not a database at all" * 100, b"SQLite format 3\x00" + b"\x07" * 3000])
def test_logs_on_a_damaged_database_says_so(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "audit.db"
    db.write_bytes(content)
    done = _cli(tmp_path, "logs", "--db", str(db))
    assert done.returncode == 3, done.stderr
    assert "the database cannot be read" in done.stderr and "Traceback" not in done.stderr


def test_unreadable_files_are_a_message_not_a_traceback(tmp_path: Path) -> None:
    binary = tmp_path / "event.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    settings_dir = tmp_path / "settings.toml"
    settings_dir.mkdir()
    for args, says in [
        (("policy", "check", "--event", str(binary), "--no-builtin"), "not UTF-8 text"),
        (("policy", "check", "--event", str(deep), "--no-builtin"), "nested too deeply"),
        (("logs", "--settings", str(settings_dir)), "is a directory"),
    ]:
        done = _cli(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_small_mistakes_get_messages_that_name_them(tmp_path: Path) -> None:
    empty = _cli(tmp_path, "logs", MCP_GATEWAY_AUDIT_DB="")
    assert empty.returncode == 2 and "audit_db" in empty.stderr and "not an empty value" in empty.stderr
    negative = _cli(tmp_path, "logs", "--db", str(tmp_path / "a.db"), "-n", "-1")
    assert negative.returncode == 2 and "Error" in negative.stderr  # typer: not in the range x>=1
    huge = _cli(tmp_path, "logs", "--db", str(tmp_path / "a.db"), "-n", "99999999999999999999")
    assert huge.returncode == 2 and "Traceback" not in huge.stderr and "10000000" in huge.stderr, huge.stderr
    for token in ("tok ", "pässwört"):  # never matched: HTTP reads header bytes as Latin-1, and clients trim spaces
        refused = _cli(tmp_path, "wrap", "--transport", "http", "--http-token", token, "--", "x")
        assert refused.returncode == 2 and "printable ASCII without leading or trailing spaces" in refused.stderr
    ending = _cli(tmp_path, "logs", "--db", str(tmp_path / "a.db"), "--follow", "--until", "1h")
    assert ending.returncode == 2 and "--until would end that at once" in ending.stderr, ending.stderr
    missing = _cli(tmp_path, "logs", "--settings", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "check --settings or MCP_GATEWAY_CONFIG" in missing.stderr
    folder = tmp_path / "configs"
    folder.mkdir()
    install = _cli(tmp_path, "install", "--config", str(folder), "--dry-run")
    assert install.returncode == 2 and "is a directory" in install.stderr, install.stderr


def test_a_policy_setup_that_cannot_work_stops_the_gateway_before_it_serves(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    broken.mkdir()
    (broken / "no-text.md").write_text("---\nid: no-text\n---\n", encoding="utf-8")
    config = write_mcp_json(tmp_path, {"raw": {"command": RAW_SERVER[0], "args": RAW_SERVER[1:]}})
    server = ["--", *RAW_SERVER]
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "bad-rules").mkdir()
    (tmp_path / "bad-rules" / "p.md").write_text("---\nrules: p.rules.yaml\n---\nNo secrets.\n", encoding="utf-8")
    (tmp_path / "bad-rules" / "p.rules.yaml").write_text("rules: [\n", encoding="utf-8")
    (tmp_path / "twins").mkdir()
    twins = write_mcp_json(tmp_path / "twins", {"my server": {"command": RAW_SERVER[0], "args": RAW_SERVER[1:]},
                                                "my-server": {"command": RAW_SERVER[0], "args": RAW_SERVER[1:]}})
    for args, says, *extra in [
        (("wrap", "--policies", str(tmp_path / "nowhere"), *server), "nowhere: no such policy file or directory"),
        (("wrap", "--no-builtin", "--policies", str(broken), *server), "no-text.md:4: the policy has no English text"),
        (("run", "--mcp-json-path", str(config), "--no-builtin"), "pass --policies DIR or drop --no-builtin"),
        # a folder without a policy would have served with none, every call passing unchecked
        (("wrap", "--no-builtin", "--policies", str(empty), *server), "holds no policy file (*.md)"),
        (("wrap", "--no-builtin", "--policies", str(tmp_path / "bad-rules"), *server), "p.rules.yaml: not valid YAML"),
        # Lasso's logging plugin alone chooses none of the built-in policies
        (("--mcp-json-path", str(config), "-p", "xetrack"), "every policy is disabled"),
        # the plugins' choice comes on top of what the settings switch off: basic keeps secrets only
        (("--mcp-json-path", str(config), "-p", "basic"), "every policy is disabled",
         {"MCP_GATEWAY_DISABLE": '["secrets"]'}),
        # two servers whose tools could not be told apart
        (("run", "--mcp-json-path", str(twins)), "'my server' and 'my-server' both become the prefix 'my-server'"),
    ]:
        (tmp_path / "none.toml").write_text("", encoding="utf-8")
        env = {**_base_env(), "MCP_GATEWAY_CONFIG": str(tmp_path / "none.toml"),
               "MCP_GATEWAY_AUDIT_DB": str(tmp_path / "audit.db"), "MCP_GATEWAY_PINS_DB": str(tmp_path / "pins.db"),
               **(extra[0] if extra else {})}
        client = "\n".join(json.dumps(m) for m in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": HELLO},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        )) + "\n"
        done = subprocess.run([sys.executable, "-m", "gateway", *args], input=client, capture_output=True, text=True,
                              timeout=60, env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        # the process ends with the message before anything is served: a client never sees a gateway that
        # refuses every call, nor one that answered and vanished without a word: the client hears the reason,
        # as the error answering its initialize or (wrap, which starts the server at once and relays the
        # client's initialize meanwhile, when the server's answer went out first) as a logged error
        frames = [json.loads(line) for line in done.stdout.splitlines()]
        assert done.stdout.endswith("\n"), done.stdout  # whole lines: a client reads frames by the line
        assert all(frame.get("id") != 2 for frame in frames), done.stdout
        told = [frame["error"]["message"] for frame in frames if frame.get("id") == 1 and "error" in frame]
        told += [frame["params"]["data"] for frame in frames if frame.get("method") == "notifications/message"]
        [reason] = told
        assert reason.startswith("mcp-gateway could not start: ") and says in reason, frames
        if any("result" in frame for frame in frames):  # answered first: the log message comes after it
            assert [frame.get("id") for frame in frames] == [1, None], frames
            assert frames[1]["params"]["level"] == "error", frames
        else:
            assert frames[0]["error"]["code"] == -32045, frames


def test_a_setup_that_fails_before_the_server_answers_is_the_error_answering_initialize(tmp_path: Path) -> None:
    # the server started early does not answer (nor read its stdin, so the gateway's exit alone would not end
    # it), and what runs is a child of the process started (as npx starts node); the policy folder given does
    # not exist
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    env = {**_base_env(), "MCP_GATEWAY_CONFIG": str(tmp_path / "none.toml"),
           "MCP_GATEWAY_AUDIT_DB": str(tmp_path / "audit.db"), "MCP_GATEWAY_PINS_DB": str(tmp_path / "pins.db")}
    hello = json.dumps({"jsonrpc": "2.0", "id": "first", "method": "initialize", "params": HELLO}) + "\n"
    marker = f"slow-server-{tmp_path.name}"  # an argument the server ignores, to find its process by
    child = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)' {marker}"
    args = ["wrap", "--policies", str(tmp_path / "nowhere"), "--", "sh", "-c", f"{child} & wait"]
    done = subprocess.run([sys.executable, "-m", "gateway", *args], input=hello, capture_output=True, text=True,
                          timeout=25, env=env)  # the server, stopped, never answers; the gateway does not wait for it
    assert done.returncode == 2, done.stderr
    [answer] = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.stdout.endswith("\n"), done.stdout
    assert answer["id"] == "first" and answer["error"]["code"] == -32045, answer
    message = answer["error"]["message"]
    assert message.startswith("mcp-gateway could not start: "), message
    assert "nowhere: no such policy file or directory" in message, message
    # the server it started is stopped, its children too, not left running behind a gateway that exited
    left = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
    assert left == [], left


@pytest.mark.parametrize("mode", ["wrap", "run"])
def test_a_client_that_initializes_just_after_the_setup_failed_is_still_answered(tmp_path: Path, mode: str) -> None:
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    env = {**_base_env(), "MCP_GATEWAY_CONFIG": str(tmp_path / "none.toml"),
           "MCP_GATEWAY_AUDIT_DB": str(tmp_path / "audit.db"), "MCP_GATEWAY_PINS_DB": str(tmp_path / "pins.db")}
    config = write_mcp_json(tmp_path, {"raw": {"command": RAW_SERVER[0], "args": RAW_SERVER[1:]}})
    target = ["--", *RAW_SERVER] if mode == "wrap" else ["--mcp-json-path", str(config)]
    with subprocess.Popen([sys.executable, "-m", "gateway", mode, "--policies", str(tmp_path / "nowhere"), *target],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as gateway:
        assert gateway.stdin is not None and gateway.stdout is not None and gateway.stderr is not None
        try:
            said = gateway.stderr.readline().decode()
            while "error:" not in said and said:
                said = gateway.stderr.readline().decode()
            assert "nowhere: no such policy file or directory" in said, said
            # the gateway has given up; the client only now sends its initialize
            hello = {"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": HELLO}
            gateway.stdin.write(json.dumps(hello).encode() + b"\n")
            gateway.stdin.flush()
            line = gateway.stdout.readline()
            assert line.endswith(b"\n"), line
            answer = json.loads(line)
            assert answer["id"] == 7 and answer["error"]["code"] == -32045, answer
            assert "nowhere: no such policy file or directory" in answer["error"]["message"], answer
            assert gateway.wait(timeout=30) == 2
        finally:
            gateway.kill()


@pytest.mark.parametrize("mode", ["wrap", "run"])
@pytest.mark.parametrize(
    ("setting", "store"), [("MCP_GATEWAY_AUDIT_DB", "audit log"), ("MCP_GATEWAY_PINS_DB", "pin store")]
)
def test_a_database_path_that_cannot_be_made_is_a_message_to_the_user_and_the_client(
    tmp_path: Path, mode: str, setting: str, store: str
) -> None:
    # a file where the database's folder should be: the folder cannot be made (this was a traceback, and a
    # client left without an answer)
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    env = {**_base_env(), "MCP_GATEWAY_CONFIG": str(tmp_path / "none.toml"),
           "MCP_GATEWAY_AUDIT_DB": str(tmp_path / "audit.db"), "MCP_GATEWAY_PINS_DB": str(tmp_path / "pins.db"),
           setting: str(tmp_path / "a-file" / "state.db")}
    config = write_mcp_json(tmp_path, {"raw": {"command": RAW_SERVER[0], "args": RAW_SERVER[1:]}})
    target = ["--", *RAW_SERVER] if mode == "wrap" else ["--mcp-json-path", str(config)]
    hello = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": HELLO}) + "\n"
    done = subprocess.run([sys.executable, "-m", "gateway", mode, *target], input=hello, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot open the {store}" in done.stderr and "check the path and its permissions" in done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines()]
    told = [frame["error"]["message"] for frame in frames if frame.get("id") == 1 and "error" in frame]
    told += [frame["params"]["data"] for frame in frames if frame.get("method") == "notifications/message"]
    [reason] = told
    assert reason.startswith("mcp-gateway could not start: ") and f"cannot open the {store}" in reason, frames
