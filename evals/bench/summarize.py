"""Summarise the harness's JSON into the figures the issue sets targets for (printed and saved)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

TARGETS = {  # added latency p50/p99 (ms) through the gateway, and the limit
    "latency_echo.json": ("short echo result", {"p50": 1.0, "p99": 3.0}),
    # no target: the harness repeats one text; real results differ from call to call (unique_echo.py)
    "latency_unique_echo.json": ("short echo, a different text each call", {}),
    "latency_leak_secrets.json": ("~1.2 KB result full of secrets and PII", {"p50": 15.0}),
    "latency_big64k.json": ("64 KiB result", {"p50": 150.0}),
}


def main(results: Path, out: Path) -> None:
    summary: dict[str, Any] = {"measured": time.strftime("%Y-%m-%d %H:%M"), "latency": {}, "startup": {}}
    lines = [
        "| result | through | p50 ms | direct p50 | added p50 | added p99 | CPU ms/call (tree) | RSS MiB (tree) "
        "| target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    startup_lines = [
        "| start-up | initialize p50 ms | added | first tools/list p50 ms | RSS MiB (tree) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (label, limits) in TARGETS.items():
        path = results / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        targets = data["targets"]
        direct = targets["direct"]["latency_ms"]
        row: dict[str, Any] = {"label": label, "direct": {k: round(direct[k], 2) for k in ("p50", "p95", "p99")}}
        for target, values in targets.items():
            if target == "direct":
                continue
            lat = values["latency_ms"]
            added = {k: round(lat[k] - direct[k], 2) for k in ("p50", "p95", "p99")}
            verdicts = {k: ("met" if added[k] <= limit else "missed") for k, limit in limits.items()}
            row[target] = {
                "p50": round(lat["p50"], 2),
                "p99": round(lat["p99"], 2),
                "added": added,
                "cpu_ms_per_call": values.get("cpu_ms_per_call"),
                "rss_tree_mib": (values.get("rss_after") or {}).get("rss_tree_mib"),
                "errors": values.get("errors"),
                "targets": verdicts,
            }
            cpu = values.get("cpu_ms_per_call")
            goal = ", ".join(f"{k} ≤ {limit:g} ms {verdicts[k]}" for k, limit in limits.items()) or (
                f"none (mean added {lat['mean'] - direct['mean']:+.2f})"
            )
            lines.append(
                f"| {label} | {target} | {lat['p50']:.2f} | {direct['p50']:.2f} | {added['p50']:+.2f} | "
                f"{added['p99']:+.2f} | {'' if cpu is None else f'{cpu:.1f}'} | "
                f"{_num(row[target]['rss_tree_mib'])} | {goal} |"
            )
        summary["latency"][name.removesuffix(".json")] = row
    startup = results / "startup.json"
    if startup.exists():
        data = json.loads(startup.read_text())["targets"]
        for target, values in data.items():
            summary["startup"][target] = {
                "init_p50_ms": round(values["init_ms"]["p50"]),
                "tools_list_p50_ms": round(values["tools_list_ms"]["p50"]),
                "rss_tree_mib": values.get("rss_tree_mib", {}).get("p50"),
            }
        direct = summary["startup"].get("direct", {}).get("init_p50_ms", 0)
        for target, values in summary["startup"].items():
            if target.endswith("-url"):  # in front of a server already running: the whole time is the gateway's
                added, said = values["init_p50_ms"], f"{values['init_p50_ms']} in all (target ≤ 500)"
            else:
                added = values["init_p50_ms"] - direct
                said = f"{added:+d} (target ≤ 500)"
            values["init_added_ms"] = added
            startup_lines.append(
                f"| {target} | {values['init_p50_ms']} | {said} | {values['tools_list_p50_ms']} | "
                f"{_num(values['rss_tree_mib'])} |"
            )
        lines += ["", *startup_lines]
    summary["summary"] = "\n".join(lines)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
