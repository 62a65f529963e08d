"""Dependency pins that guard against known-bad releases."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def test_no_requirement_admits_the_compromised_litellm_1_107_releases() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(pyproject["dependencies"])
    for extra in pyproject.get("optional-dependencies", {}).values():
        lines += extra
    lines += [line for line in (ROOT / ".ci" / "constraints.txt").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    litellm = [Requirement(line) for line in lines if Requirement(line).name == "litellm"]
    assert litellm, "litellm is pinned somewhere"
    for requirement in litellm:
        assert requirement.specifier.contains("1.106.2")
        for bad in ("1.107.0", "1.107.1", "1.107.5", "1.107.12"):
            assert not requirement.specifier.contains(bad, prereleases=True), (str(requirement), bad)
