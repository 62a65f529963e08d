"""Audit excerpts hold what was found masked, whichever part of the message it was in."""

from __future__ import annotations

from gateway.enginehost import EngineHost
from gateway.guards import decide, safe_excerpt
from policy.subject import Subject, SubjectKind
from policy.verdict import Action, Outcome, Span, Tier, Verdict

from .relay_support import ready_host

EMAIL = "sofia.lindqvist@polarbyte.se"


def _host() -> EngineHost:
    return ready_host()


def _verdict(*spans: Span) -> Verdict:
    return Verdict(policy="pii", outcome=Outcome.VIOLATION, action=Action.MASK, tier=Tier.DETECTOR,
                   reason="found email", evidence=spans)


def test_a_result_with_only_structured_content_is_excerpted_with_its_masks() -> None:
    structured = {"owner": {"name": "Sofia", "email": EMAIL}, "n": 3}
    subject = Subject(kind=SubjectKind.TOOL_RESULT, tool="card", structured=structured)
    decision = decide([_verdict(Span(field="structured.owner.email", start=0, end=len(EMAIL), label="email"))])
    excerpt = safe_excerpt(subject, decision, _host())
    assert EMAIL not in excerpt
    assert '"email": "[MASKED:email]"' in excerpt
    assert '"n": 3' in excerpt


def test_a_result_with_text_is_excerpted_from_its_masked_text() -> None:
    text = f"owner {EMAIL}"
    subject = Subject(kind=SubjectKind.TOOL_RESULT, tool="card", text=text, structured={"email": EMAIL})
    spans = (Span(field="text", start=6, end=6 + len(EMAIL), label="email"),
             Span(field="structured.email", start=0, end=len(EMAIL), label="email"))
    excerpt = safe_excerpt(subject, decide([_verdict(*spans)]), _host())
    assert excerpt == "owner [MASKED:email]"


def test_an_audit_row_for_a_resource_names_its_uri(tmp_path: object) -> None:
    from gateway.guards import Guard

    subject = Subject(kind=SubjectKind.RESOURCE, server="files", method="resources/read", text=f"owner {EMAIL}",
                      metadata={"uri": "file:///srv/owners.txt"})
    decision = decide([_verdict(Span(field="text", start=6, end=6 + len(EMAIL), label="email"))])
    [row] = Guard(_host())._rows(subject, decision, 0.0)
    assert row.tool == "file:///srv/owners.txt"
    assert row.excerpt == "owner [MASKED:email]"


def test_a_token_in_a_resource_uri_is_masked_where_the_row_names_it() -> None:
    from gateway.guards import Guard

    token = "ghp_" + "R7x2Kq9LmN4pZ8vW3tY6uB1cD5eF0gHjK2aQ"
    subject = Subject(kind=SubjectKind.RESOURCE, server="web", method="resources/read", text="page",
                      metadata={"uri": f"https://api.example.com/v1?access_token={token}"})
    [row] = Guard(_host())._rows(subject, decide([_verdict()]), 0.0)
    assert row.tool == "https://api.example.com/v1?access_token=[MASKED:github-token]"
