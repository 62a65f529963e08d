"""Added latency on short results the gateway has never seen: each call echoes a different text.

The shared harness repeats one argument, so every result after the first is a text whose MiniLM
vector the gateway remembers. Real tool results differ from call to call; this driver measures
that case. Targets are stdio commands, spoken to in raw JSON-RPC lines (no client library in the
timing), interleaved in batches so machine noise hits each alike. Writes the harness's JSON shape.

    python unique_echo.py OUT.json -n 300 --target direct=CMD --target mcp-gateway=CMD
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

TEXTS = (
    "build {i} passed",
    "order {i} has shipped",
    "3 files changed in commit {i}",
    "meeting {i} moved to Thursday",
    "no results for query {i}",
)


class Target:
    def __init__(self, name: str, command: str, stderr: Path) -> None:
        self.name = name
        self.process = subprocess.Popen(
            shlex.split(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr.open("wb")
        )
        self.next_id = 0
        self.latencies: list[float] = []
        self.errors = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"{self.name}: the server closed its output (see its stderr log)")
            message = json.loads(line)
            if message.get("id") == self.next_id and ("result" in message or "error" in message):
                return message

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def start(self) -> None:
        params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
        self.request("initialize", params)
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.request("tools/list", {})  # waits, through the gateway, until its models are loaded

    def call(self, text: str, record: bool) -> None:
        started = time.perf_counter()
        answer = self.request("tools/call", {"name": "echo", "arguments": {"text": text}})
        elapsed = (time.perf_counter() - started) * 1000
        if "error" in answer or answer.get("result", {}).get("isError"):
            self.errors += 1
        if record:
            self.latencies.append(elapsed)

    def tree(self) -> tuple[float, float]:
        """CPU seconds and RSS MiB of the target's process tree."""
        cpu = rss = 0.0
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss / 2**20
        except psutil.Error:
            pass
        return cpu, rss

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": pct(50),
        "p90": pct(90),
        "p95": pct(95),
        "p99": pct(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=300, help="recorded calls per target")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--target", action="append", required=True, help="NAME=COMMAND (the first is the baseline)")
    parser.add_argument("--stderr-dir", type=Path, default=Path("."))
    args = parser.parse_args()
    args.stderr_dir.mkdir(parents=True, exist_ok=True)
    targets = []
    for spec in args.target:
        name, _, command = spec.partition("=")
        targets.append(Target(name, command, args.stderr_dir / f"{name}.stderr.log"))
    counter = 0

    def text() -> str:
        nonlocal counter
        counter += 1
        return TEXTS[counter % len(TEXTS)].format(i=counter)

    try:
        for target in targets:
            target.start()
            for _ in range(args.warmup):
                target.call(text(), record=False)
        before = {t.name: t.tree()[0] for t in targets}
        batch = max(1, min(args.batch, args.n))
        for round_index in range(max(1, args.n // batch)):
            shift = round_index % len(targets)
            for target in targets[shift:] + targets[:shift]:
                for _ in range(batch):
                    target.call(text(), record=True)
        report: dict[str, Any] = {"tool": "echo", "args": "a different short text each call", "targets": {}}
        for target in targets:
            cpu, rss = target.tree()
            report["targets"][target.name] = {
                "latency_ms": summary(target.latencies),
                "cpu_ms_per_call": (cpu - before[target.name]) * 1000 / max(1, len(target.latencies)),
                "rss_after": {"rss_tree_mib": round(rss, 1)},
                "errors": target.errors,
            }
    finally:
        for target in targets:
            target.stop()
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    base = report["targets"][targets[0].name]["latency_ms"]
    print(f"\nshort echo, a different text each call, n/target={args.n}")
    for name, values in report["targets"].items():
        lat = values["latency_ms"]
        print(
            f"{name:24s} p50 {lat['p50']:7.3f}  p99 {lat['p99']:7.3f}  mean {lat['mean']:7.3f}  "
            f"added p50 {lat['p50'] - base['p50']:+7.3f}  mean {lat['mean'] - base['mean']:+7.3f}  "
            f"cpu/call {values['cpu_ms_per_call']:.2f} ms  errors {values['errors']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
