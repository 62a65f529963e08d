"""Masking keeps JSON valid and leaves nothing of what it masks."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.masking import mask_json_text, mask_string, mask_value_at, merge_spans
from gateway.subjects import mask_message, result_subject
from policy.verdict import Span

SECRET = "Zq9XKv7Lm2Wb8Rt4Yp6N"


def spans_of(text: str, needle: str, label: str = "secret") -> list[tuple[int, int, str]]:
    out, start = [], text.find(needle)
    while start != -1:
        out.append((start, start + len(needle), label))
        start = text.find(needle, start + 1)
    return out


def test_plain_text_spans_become_tokens() -> None:
    text = f"key={SECRET} and again {SECRET}."
    assert mask_string(text, spans_of(text, SECRET)) == "key=[MASKED:secret] and again [MASKED:secret]."


def test_a_number_in_json_becomes_a_quoted_token() -> None:
    text = '{"card": 4111111111111111, "ok": true}'
    masked = mask_string(text, spans_of(text, "4111111111111111", "card"))
    assert json.loads(masked) == {"card": "[MASKED:card]", "ok": True}


def test_a_span_that_cuts_an_escape_sequence_leaves_valid_json() -> None:
    value = "-----BEGIN KEY-----\nMIIEabc\n-----END KEY-----"
    text = json.dumps({"pem": value, "n": 1})
    start = text.index("\\nMIIE") + 1  # starts on the 'n' of an escaped newline
    masked = mask_json_text(text, [(start, text.index("-----END"), "pk")])
    assert masked is not None
    decoded = json.loads(masked)
    assert "MIIEabc" not in decoded["pem"] and decoded["n"] == 1


def test_overlapping_spans_merge() -> None:
    assert merge_spans([(5, 10, "a"), (0, 6, "b"), (20, 25, "c")]) == [(0, 10, "b"), (20, 25, "c")]


def test_masking_a_value_by_path_changes_only_that_value() -> None:
    data = {"a": {"b": [f"x {SECRET} y", "keep"]}, "n": 5}
    masked = mask_value_at(data, ".a.b[0]", [(2, 2 + len(SECRET), "s")])
    assert masked == {"a": {"b": ["x [MASKED:s] y", "keep"]}, "n": 5}
    assert data["a"]["b"][0] == f"x {SECRET} y"  # the original is untouched


def test_a_masked_number_stays_a_number() -> None:
    data = {"card_number": 4111111111111111, "amount": 12.5, "phone": "+1 312 448 9176"}
    masked = mask_value_at(data, ".card_number", [(0, 16, "credit-card")])
    masked = mask_value_at(masked, ".amount", [(0, 4, "x")])
    assert masked == {"card_number": 0, "amount": 0.0, "phone": "+1 312 448 9176"}
    assert isinstance(masked["card_number"], int) and isinstance(masked["amount"], float)


def test_a_value_under_a_non_ascii_key_is_masked() -> None:
    data = {"schlüssel": SECRET, "配置": {"キー": [SECRET]}}
    masked = mask_value_at(data, ".schlüssel", [(0, len(SECRET), "s")])
    masked = mask_value_at(masked, ".配置.キー[0]", [(0, len(SECRET), "s")])
    assert masked == {"schlüssel": "[MASKED:s]", "配置": {"キー": ["[MASKED:s]"]}}


def test_spans_in_the_joined_text_are_masked_in_each_content_block() -> None:
    result = {
        "content": [
            {"type": "text", "text": "first block"},
            {"type": "resource", "resource": {"uri": "x://1", "text": f"token {SECRET}"}},
        ],
        "structuredContent": {"token": SECRET},
        "_meta": {"keep": 1},
    }
    subject, layout = result_subject("tools/call", "srv", {"name": "t"}, result)  # type: ignore[misc]
    start = subject.text.index(SECRET)
    spans = [
        Span(field="text", start=start, end=start + len(SECRET), label="s"),
        Span(field="structured.token", start=0, end=len(SECRET), label="s"),
    ]
    masked = mask_message(result, layout, spans, structured_key="structuredContent")
    assert masked["content"][0]["text"] == "first block"
    assert masked["content"][1]["resource"]["text"] == "token [MASKED:s]"
    assert masked["structuredContent"] == {"token": "[MASKED:s]"}
    assert masked["_meta"] == {"keep": 1}
    assert SECRET not in json.dumps(masked)


json_leaf = st.one_of(
    st.integers(), st.text(max_size=20), st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False)
)
json_docs = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=15,
)


def _plant(value: Any, draw_index: int) -> Any:
    if isinstance(value, dict):
        return {**value, f"k{draw_index}": f"pre {SECRET} post"}
    if isinstance(value, list):
        return [*value, SECRET]
    return {"wrapped": value, "secret": f"\\{SECRET}\n"}


@settings(max_examples=300, deadline=None)
@given(json_docs, st.integers(0, 5), st.sampled_from([None, 2]))
def test_masked_json_text_stays_valid_and_never_leaks(doc: Any, index: int, indent: int | None) -> None:
    text = json.dumps(_plant(doc, index), indent=indent, ensure_ascii=False)
    masked = mask_string(text, spans_of(text, SECRET))
    assert SECRET not in masked
    json.loads(masked)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200), st.integers(1, len(SECRET)))
def test_any_span_covering_a_secret_removes_every_character_of_it(before: str, after: str, cut: int) -> None:
    text = before + SECRET + after
    spans = [(len(before), len(before) + cut, "a"), (len(before) + cut - 1, len(before) + len(SECRET), "b")]
    masked = mask_string(text, spans)
    assert SECRET not in masked
    try:
        json.loads(text)
    except ValueError:
        assert masked == before + "[MASKED:a]" + after  # overlapping spans merge into one token


def test_side_places_of_a_result_are_listed_and_masked_where_they_came_from() -> None:
    import base64

    from gateway.subjects import mask_sides, side_subject, side_values

    binary = base64.b64encode(bytes(range(256))).decode()
    text_blob = base64.b64encode(f"key {SECRET}".encode()).decode()
    result = {
        "contents": [
            {"uri": "mem://bin", "blob": binary},
            {"uri": "mem://txt", "blob": text_blob, "_meta": {"note": SECRET}},
        ],
    }
    sides = side_values("resources/read", result)
    assert [side.path for side in sides] == [
        ("contents", 0, "uri"), ("contents", 1, "uri"), ("contents", 1, "_meta"), ("contents", 1, "blob")
    ]  # the binary blob is not text: nothing to read in it
    subject = side_subject("srv", "resources/read", "", sides)
    assert subject.structured == {"s0": "mem://bin", "s1": "mem://txt", "s2": {"note": SECRET}, "s3": f"key {SECRET}"}
    spans = [
        Span(field="structured.s2.note", start=0, end=len(SECRET), label="s"),
        Span(field="structured.s3", start=4, end=4 + len(SECRET), label="s"),
    ]
    masked = mask_sides(result, sides, spans)
    assert masked["contents"][0] == result["contents"][0]
    assert masked["contents"][1]["_meta"] == {"note": "[MASKED:s]"}
    assert base64.b64decode(masked["contents"][1]["blob"]).decode() == "key [MASKED:s]"
    assert SECRET not in json.dumps(masked) and result["contents"][1]["_meta"] == {"note": SECRET}


def test_many_paths_are_masked_in_one_pass_values_first_then_keys_from_the_deepest_up() -> None:
    from gateway.masking import masked_in_place

    data = {"a@x.io": {"b@x.io": "c@x.io", "n": 5}, "[MASKED:e]": 1, "d@x.io": [{"e@x.io": 2}]}

    def span(text: str) -> list[tuple[int, int, str]]:
        return [(0, len(text), "e")]

    grouped = {
        '.["a@x.io"]:key': span("a@x.io"),
        '.["a@x.io"].["b@x.io"]:key': span("b@x.io"),
        '.["a@x.io"].["b@x.io"]': span("c@x.io"),
        '.["a@x.io"].n': [(0, 1, "n")],
        '.["d@x.io"]:key': span("d@x.io"),
        '.["d@x.io"][0].["e@x.io"]:key': span("e@x.io"),
    }
    masked = masked_in_place(data, grouped)
    assert masked is data  # in place: the caller's copy
    assert json.dumps(masked) == json.dumps({
        "[MASKED:e] 2": {"[MASKED:e]": "[MASKED:e]", "n": 0},
        "[MASKED:e]": 1,  # a key already so named keeps its name and value
        "[MASKED:e] 3": [{"[MASKED:e]": 2}],
    })
