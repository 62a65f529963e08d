"""Summarise the harness's JSON into the figures the issue sets targets for (printed and saved)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

TARGETS = {  # added latency p50/p99 (ms) through the gateway, and the limit
    "latency_echo.json": ("short echo result", {"p50": 1.0, "p99": 3.0}),
    "latency_leak_secrets.json": ("~1.2 KB result full of secrets and PII", {"p50": 15.0}),
    "latency_big64k.json": ("64 KiB result", {"p50": 150.0}),
}


def main(results: Path, out: Path) -> None:
    summary: dict[str, Any] = {"measured": time.strftime("%Y-%m-%d %H:%M"), "latency": {}, "startup": {}}
    lines = []
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
            lines.append(
                f"{label:<42} {target:<22} p50 {lat['p50']:7.2f} ms (direct {direct['p50']:6.2f}, added "
                f"{added['p50']:+6.2f}) p99 {lat['p99']:7.2f} (added {added['p99']:+6.2f}) cpu/call "
                f"{values.get('cpu_ms_per_call')} ms rss {row[target]['rss_tree_mib']} MiB  {verdicts}"
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
            added = values["init_p50_ms"] - direct
            values["init_added_ms"] = added
            lines.append(
                f"startup {target:<22} initialize p50 {values['init_p50_ms']} ms (added {added:+d}, target "
                f"≤ 500) first tools/list p50 {values['tools_list_p50_ms']} ms rss {values['rss_tree_mib']} MiB"
            )
    summary["summary"] = "\n".join(f"    {line}" for line in lines)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
