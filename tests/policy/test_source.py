from __future__ import annotations

from pathlib import Path

import pytest

from policy.errors import PolicySourceError
from policy.source import load_source, parse_source
from policy.subject import SubjectKind
from policy.verdict import Action

TRANSFERS = """---
id: no-large-transfers
action: block
applies_to: [tool_call]
tools: ["transfer*"]
---
# No large transfers

Never move more than 1,000 dollars in one transfer.

## Violations
- transfer {"amount": 5000, "to": "acct-9"}
- transfer_funds {"amount": "$2,500"}

## Allowed
- transfer {"amount": 999}
"""


def test_front_matter_body_and_examples_are_parsed() -> None:
    source = parse_source(TRANSFERS, "policies/no-large-transfers.md")
    assert source.id == "no-large-transfers"
    assert source.front.action is Action.BLOCK
    assert source.front.applies_to == [SubjectKind.TOOL_CALL]
    assert source.front.tools == ["transfer*"]
    assert "Never move more than 1,000 dollars" in source.body
    assert "## Violations" not in source.body
    assert source.title == "No large transfers"
    violations = [e for e in source.examples if e.violation]
    allowed = [e for e in source.examples if not e.violation]
    assert [e.subject.tool for e in violations] == ["transfer", "transfer_funds"]
    assert violations[0].subject.arguments == {"amount": 5000, "to": "acct-9"}
    assert violations[0].line == 12
    assert allowed[0].subject.arguments == {"amount": 999}


@pytest.mark.parametrize(
    "variant",
    [TRANSFERS.replace("---\n", "---  \n", 1), "\ufeff" + TRANSFERS, TRANSFERS.replace("\n", "\r\n")],
    ids=["trailing-blanks", "byte-order-mark", "crlf"],
)
def test_front_matter_is_read_whatever_the_editor_put_around_its_first_line(tmp_path: Path, variant: str) -> None:
    path = tmp_path / "no-large-transfers.md"
    path.write_bytes(variant.encode("utf-8"))
    source = load_source(path)
    assert source.front.applies_to == [SubjectKind.TOOL_CALL]
    assert source.front.tools == ["transfer*"]
    assert "applies_to" not in source.body and source.body.startswith("# No large transfers")


def test_a_policy_without_front_matter_takes_its_id_from_the_file_name() -> None:
    source = parse_source("Do not reveal the launch date.\n", "policies/launch-date.md")
    assert source.id == "launch-date"
    assert source.front.action is Action.BLOCK
    assert source.examples == ()


def test_text_examples_get_the_single_declared_kind() -> None:
    text = '---\napplies_to: tool_result\n---\nNo recipes.\n\n## Violations\n- "Mix flour and eggs"\n'
    source = parse_source(text, "p.md")
    assert source.examples[0].subject.kind is SubjectKind.TOOL_RESULT
    assert source.examples[0].subject.text == "Mix flour and eggs"


def test_block_and_mask_policies_fail_closed_by_default() -> None:
    assert parse_source("---\naction: mask\n---\nx\n", "a.md").on_error == "block"
    assert parse_source("---\naction: warn\n---\nx\n", "b.md").on_error == "allow"
    assert parse_source("---\naction: warn\non_error: block\n---\nx\n", "c.md").on_error == "block"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("---\nid: x\nactoin: block\n---\nbody\n", 3, "unknown front-matter key 'actoin'"),
        ("---\naction: explode\n---\nbody\n", 2, "front-matter key 'action'"),
        ("---\nid: [unclosed\n---\nbody\n", None, "not valid YAML"),
        ("---\naction: block\n", 1, "never ends"),
        ("---\naction: block\n---\n\n## Violations\n- x\n", None, "no English text"),
        ("---\nthresholds: {allow_below: 0.9, violate_above: 0.2}\n---\nbody\n", 2, "must not exceed"),
        ("Body.\n\n## Violations\nnot a list item\n", 4, "not a list item"),
        ('---\napplies_to: [tool_call]\n---\nBody.\n\n## Violations\n- {"kind": "nope"}\n', 7, "not a valid subject"),
    ],
)
def test_malformed_sources_name_the_file_line_and_fix(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(PolicySourceError) as caught:
        parse_source(text, "policies/bad.md")
    error = caught.value
    assert fragment in str(error)
    assert str(error).startswith("policies/bad.md")
    if line is not None:
        assert error.line == line
    assert error.fix


def test_loading_a_file_records_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "p.md"
    path.write_text(TRANSFERS, encoding="utf-8")
    first = load_source(path)
    path.write_text(TRANSFERS.replace("1,000", "2,000"), encoding="utf-8")
    assert load_source(path).sha256 != first.sha256
    assert len(first.sha256) == 64


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.md"
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(PolicySourceError, match="not UTF-8"):
        load_source(path)
