"""Build the evaluation and training cases: ``python -m evals.build [--out evals/.work/cases] [--data DIR]``.

Reads the public datasets (``$MCP_GATEWAY_DATA_DIR`` or ``../shared/data``) and the npm packages of the
``npm-code`` source (downloaded once into ``evals/.work/downloads``; ``--no-fetch`` uses only what is there),
writes one JSONL per suite, source and split plus ``manifest.json``, and prints the counts to stderr. The output
directory is git-ignored: the data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from evals.datasets import ROOT, DatasetError, build_all, default_data_dir
from evals.datasets.npm_code import DOWNLOADS, PACKAGES, fetch_packages

DEFAULT_OUT = ROOT / "evals" / ".work" / "cases"


def _table(manifest: dict[str, object]) -> str:
    sources = manifest["sources"]
    assert isinstance(sources, dict)
    rows = [("suite", "source", "split", "violation", "allow", "licence")]
    for name, info in sorted(sources.items(), key=lambda item: (item[1]["suite"], item[0])):
        licence = info["licence"] + ("  [eval only: test split]" if info["eval_only"] else "")
        for split in ("train", "dev", "test"):
            counts = info["counts"].get(split)
            if counts:
                rows.append((info["suite"], name, split, str(counts.get("violation", 0)), str(counts.get("allow", 0)),
                             licence))
                licence = ""  # once per source
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(width) if i < 3 else cell.rjust(width) for i, (cell, width) in
                       enumerate(zip(row[:5], widths, strict=True))) + "  " + row[5] for row in rows]
    suites = manifest["suites"]
    assert isinstance(suites, dict)
    lines.append("")
    for suite, splits in suites.items():
        summary = ", ".join(f"{split} {c.get('violation', 0)}/{c.get('allow', 0)}" for split, c in splits.items())
        lines.append(f"{suite}: {summary} (violation/allow)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None, help="dataset directory (default: $MCP_GATEWAY_DATA_DIR "
                        f"or {default_data_dir()})")
    parser.add_argument("--no-fetch", action="store_true", help="build from the npm tarballs already downloaded; "
                        "fetch none")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not args.no_fetch:
        fetched = fetch_packages()
        sys.stderr.write(f"npm-code: {fetched} of {len(PACKAGES)} packages in {DOWNLOADS}\n")
    try:
        files = build_all(args.out, args.data)
    except DatasetError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    manifest = json.loads((args.out / "manifest.json").read_text(encoding="utf-8"))
    sys.stderr.write(_table(manifest) + "\n")
    sys.stderr.write(f"\nwrote {sum(files.values())} cases in {len(files)} files to {args.out} "
                     f"in {time.perf_counter() - started:.1f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
