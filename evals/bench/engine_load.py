"""How long the gateway's policy engine takes to load, and what a full garbage collection costs after.

Loads the built-in policies and models the way `mcp-gateway wrap` does (in the background engine
host), then times a full cyclic collection, which Python runs on its own now and then while the
gateway serves, holding the interpreter lock. Prints the figures and writes them as JSON.

    python -m evals.bench.engine_load [OUT.json] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

_ONE = """
import gc, json, time
started = time.perf_counter()
from gateway.serve import make_parts
from gateway.settings import Settings
parts = make_parts(Settings(audit=False, pins=False))
parts.host.wait_ready()
ready = time.perf_counter() - started
pauses = []
for _ in range(5):
    t = time.perf_counter(); gc.collect(); pauses.append((time.perf_counter() - t) * 1000)
print(json.dumps({"ready_s": ready, "engine_load_s": parts.host.load_seconds, "full_collection_ms": sorted(pauses)[2],
                  "frozen_objects": gc.get_freeze_count()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes to load in (default 3)")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        # each load in a fresh interpreter, as a gateway starts
        done = subprocess.run([sys.executable, "-c", _ONE], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"engine load (median of {len(runs)} fresh processes)")
    print(f"  process start to engine ready   {summary['ready_s']:6.2f} s")
    print(f"  engine load on its thread        {summary['engine_load_s']:6.2f} s")
    print(f"  a full garbage collection after  {summary['full_collection_ms']:6.2f} ms")
    print(f"  objects frozen after the load    {summary['frozen_objects']:,.0f}")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "median": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
