"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home folder for the test: every client's config and the gateway's state live under it, and
    no MCP_GATEWAY_ setting of the machine's applies."""
    home = tmp_path / "home"
    home.mkdir()
    for name, value in {
        "HOME": home,
        "USERPROFILE": home,
        "APPDATA": home / "AppData" / "Roaming",
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_STATE_HOME": home / ".local" / "state",
        "XDG_CACHE_HOME": home / ".cache",
        "CODEX_HOME": home / ".codex",
    }.items():
        monkeypatch.setenv(name, str(value))
    for name in [key for key in os.environ if key.startswith("MCP_GATEWAY_")]:
        monkeypatch.delenv(name)
    return home
