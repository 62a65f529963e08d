"""PII: Presidio's synthetic sentences, labelled by the entity types our policy masks.

The policy masks names, email addresses, phone numbers, payment cards, US SSNs, IBANs and IP
addresses. A sentence with one of those is a violation; a sentence whose only spans are other
types (street address, organisation, date, job title, driver's licence...) is ``allow`` for this
policy and tagged ``other-entities-only``. Gold spans never go into the case (``structured`` is
part of what the engine sees): they are written beside the cases, one line per case, as
``{"id", "spans": [[start, end, label]], "other": [[start, end, PRESIDIO_TYPE]]}``.

Sentences come from templates filled with fake values; all sentences of one template share a
split, or a template would be learned in train and recognised in test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Case, Source, SubjectKind, make_case, read_json, text_split

__all__ = ["LABELS", "SOURCES", "PiiRow", "pii_cases", "pii_spans"]

PRESIDIO = Source("presidio-synth", "pii", "MIT", "microsoft/presidio-research data/synth_dataset_v2.json", True,
                  "synthetic (Faker) values")
SOURCES = (PRESIDIO,)
# Presidio's entity names -> the detector's labels (policy.detectors.pii.LABELS, default entities).
LABELS = {"PERSON": "person", "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "credit-card",
          "US_SSN": "us-ssn", "IBAN_CODE": "iban", "IP_ADDRESS": "ip-address"}


@dataclass(frozen=True)
class PiiRow:
    case: Case
    spans: list[tuple[int, int, str]]
    other: list[tuple[int, int, str]]


def _rows(data_dir: Path) -> Iterator[PiiRow]:
    records: list[dict[str, Any]] = read_json(data_dir / "presidio-synth-pii" / "synth_dataset_v2.json")
    for index, record in enumerate(records):
        text = str(record["full_text"])
        spans = sorted((int(s["start_position"]), int(s["end_position"]), LABELS[s["entity_type"]])
                       for s in record["spans"] if s["entity_type"] in LABELS)
        other = sorted((int(s["start_position"]), int(s["end_position"]), str(s["entity_type"]))
                       for s in record["spans"] if s["entity_type"] not in LABELS)
        tags = sorted({f"entity:{label}" for _, _, label in spans})
        if not spans:
            tags.append("other-entities-only" if other else "no-entities")
        case = make_case(PRESIDIO, str(index), kind=SubjectKind.TOOL_RESULT,
                         expect="violation" if spans else "allow", text=text,
                         split=text_split(f"presidio-template:{record['template_id']}"), tags=tags)
        yield PiiRow(case, spans, other)


def pii_cases(data_dir: Path) -> Iterator[Case]:
    for row in _rows(data_dir):
        yield row.case


def pii_spans(data_dir: Path) -> Iterator[PiiRow]:
    yield from _rows(data_dir)
