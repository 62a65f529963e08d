"""Golden before/after configs for every client: what install writes, and that uninstall gives the bytes back.

Regenerate the ``*.after.*`` and ``*.report.txt`` files with ``UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clientconfig import parse_config
from gateway.clients import ClientName, ConfigFormat, Environment, config_locations
from gateway.installer import FilePlan, plan_install, plan_uninstall
from gateway.installstate import InstallState

GOLDEN = Path(__file__).parent / "golden" / "install"
GATEWAY = "/opt/mcp-gateway/bin/mcp-gateway"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ENV = Environment(
    system="linux",
    home=Path("/home/ada"),
    project=Path("/home/ada/shop"),
    appdata=Path("/home/ada/AppData/Roaming"),
    xdg_config_home=Path("/home/ada/.config"),
    xdg_state_home=Path("/home/ada/.local/state"),
    codex_home=Path("/home/ada/.codex"),
)

# case name, client, which of the client's config files (by the end of its path)
CASES = [
    ("cursor", ClientName.CURSOR, "mcp.json"),
    ("claude-desktop", ClientName.CLAUDE_DESKTOP, "claude_desktop_config.json"),
    ("claude-code-user", ClientName.CLAUDE_CODE, ".claude.json"),
    ("claude-code-project", ClientName.CLAUDE_CODE, ".mcp.json"),
    ("vscode-workspace", ClientName.VSCODE, ".vscode/mcp.json"),
    ("vscode-settings", ClientName.VSCODE, "settings.json"),
    ("windsurf", ClientName.WINDSURF, "mcp_config.json"),
    ("gemini", ClientName.GEMINI, "settings.json"),
    ("codex", ClientName.CODEX, "config.toml"),
]


def golden_file(case: str, stage: str) -> Path:
    [found] = GOLDEN.glob(f"{case}.{stage}.*")
    return found


def report(plan: FilePlan) -> str:
    lines = [f"{e.status.value} {e.where}" + (f": {e.reason}" if e.reason else "") for e in plan.entries]
    lines += [f"warning {e.where}: {w}" for e in plan.entries for w in e.warnings]
    return "\n".join(lines) + "\n"


def check_golden(path: Path, actual: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(actual.encode("utf-8"))
    assert actual == path.read_bytes().decode("utf-8")


@pytest.mark.parametrize(("case", "client", "file_name"), CASES, ids=[c[0] for c in CASES])
def test_install_matches_the_golden_config_and_uninstall_gives_back_the_original_bytes(
    case: str, client: ClientName, file_name: str
) -> None:
    location = next(loc for loc in config_locations(client, ENV) if loc.path.as_posix().endswith("/" + file_name))
    before = golden_file(case, "before").read_bytes().decode("utf-8")

    installed = plan_install(location, before, gateway=GATEWAY, now=NOW)
    after_path = golden_file(case, "before").with_name(golden_file(case, "before").name.replace(".before.", ".after."))
    check_golden(after_path, installed.after)
    check_golden(GOLDEN / f"{case}.report.txt", report(installed))
    assert installed.changed

    state = InstallState(records=installed.added)
    restored = plan_uninstall(location, installed.after, state=state)
    assert restored.after == before
    assert {r.key for r in restored.removed} == {r.key for r in installed.added}

    reinstalled = plan_install(location, installed.after, gateway=GATEWAY, now=NOW)
    assert not reinstalled.changed


@pytest.mark.parametrize(("case", "client", "file_name"), CASES, ids=[c[0] for c in CASES])
def test_without_the_install_record_uninstall_still_gives_back_every_server(
    case: str, client: ClientName, file_name: str
) -> None:
    location = next(loc for loc in config_locations(client, ENV) if loc.path.as_posix().endswith("/" + file_name))
    before = golden_file(case, "before").read_bytes().decode("utf-8")
    installed = plan_install(location, before, gateway=GATEWAY, now=NOW)

    restored = plan_uninstall(location, installed.after, state=InstallState())

    original = parse_config(location, before).data()
    recovered = parse_config(location, restored.after).data()
    # without the record only what the command line holds comes back: the server itself, not spellings
    # such as an empty 'args' list; every entry that install wrapped runs its original server again
    for record in installed.added:
        assert isinstance(record.original, dict)
        got = dig(recovered, record.table)[record.name]
        want = dict(record.original)
        if want.get("args") == []:
            del want["args"]
        assert got == want, record.name
    unwrapped_names = {(r.table, r.name) for r in installed.added}
    for table in parse_config(location, before).tables():
        for name, value in dig(original, table).items():
            if (table, name) not in unwrapped_names and name != "already":
                assert dig(recovered, table)[name] == value


def dig(data: object, path: tuple[str, ...]) -> dict[str, object]:
    for key in path:
        assert isinstance(data, dict)
        data = data[key]
    assert isinstance(data, dict)
    return data


def test_every_client_has_a_golden_case() -> None:
    assert {client for _, client, _ in CASES} == set(ClientName)
    assert any(loc.format is ConfigFormat.TOML for c in ClientName for loc in config_locations(c, ENV))
