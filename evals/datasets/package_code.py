"""Benign source code and documentation, as a filesystem or code-search server returns them: the Python files
and the README (the long description in the package metadata) of installed packages.

A coding agent reads source files all day. Code is far from the prose and chat the injection corpora hold,
and a classifier that never saw it scores plain lines (`_eof_sent: bool = False`, an ``__all__`` tuple) as
attacks. Every case here is an excerpt of a file of a permissively licensed package installed beside the
project (`DISTRIBUTIONS`, `DOC_DISTRIBUTIONS`), labelled benign. Most are pinned by ``.ci/constraints.txt``;
pip, setuptools and the READMEs of the notebooks extra's packages are not, so a setup without that extra,
or with other versions, builds a smaller or different suite (a missing package is skipped). Nothing is
copied into the repository: the cases are built into ``evals/.work`` like
every other suite, and a trained head keeps weights, not text.

A README is instructions to a human ("Install it with pip", "Call connect() first"), which a classifier that
learned that orders in a tool result are attacks must see as benign too.

Splits go by the file's path (a README's by its package), so the excerpts of a file share one split.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

from .base import Case, Source, Split, SubjectKind, make_case, text_split

__all__ = ["DISTRIBUTIONS", "DOC_DISTRIBUTIONS", "SOURCES", "file_cases", "package_code_cases", "package_doc_cases"]

CODE = Source(
    "package-code",
    "prompt-injection",
    "MIT / BSD / Apache-2.0 (each package's own licence)",
    "source files of installed packages (importlib.metadata)",
    commercial=True,
    note="excerpts of Python files of installed, permissively licensed packages, as a file-reading tool returns them",
)
DOCS = Source(
    "package-docs",
    "prompt-injection",
    "MIT / BSD / Apache-2.0 (each package's own licence)",
    "package metadata of installed packages (importlib.metadata)",
    commercial=True,
    note="excerpts of the READMEs of installed, permissively licensed packages, as a file-reading tool returns them",
)
SOURCES = (CODE, DOCS)

# General-purpose libraries under MIT, BSD or Apache-2.0 licences. Packages about LLMs, prompts or their
# security (litellm, instructor, openai, presidio) are left out: their sources quote prompts and attacks.
DISTRIBUTIONS = (
    "anyio", "attrs", "click", "diskcache", "fsspec", "h11", "httpcore", "httpx", "huggingface-hub", "idna",
    "jinja2", "joblib", "jsonschema", "markdown-it-py", "mcp", "networkx", "numpy", "packaging", "phonenumbers",
    "pip", "psutil", "pyarrow", "pydantic", "pygments", "pyyaml", "referencing", "requests", "rich",
    "scikit-learn", "scipy", "sentence-transformers", "setuptools", "spacy", "srsly", "starlette", "sympy",
    "thinc", "tldextract", "tomlkit", "torch", "typer", "urllib3", "uvicorn",
)
# READMEs: the packages above and more of the setup's permissively licensed dependencies.
DOC_DISTRIBUTIONS = tuple(sorted({
    *DISTRIBUTIONS,
    "aiohttp", "aiosignal", "annotated-types", "asttokens", "blis", "boto3", "botocore", "catalogue", "cffi",
    "charset-normalizer", "cloudpathlib", "cloudpickle", "confection", "cryptography", "cymem", "distro",
    "docstring-parser", "executing", "fonttools", "frozenlist", "h2", "hpack", "importlib-metadata", "iniconfig",
    "jedi", "jiter", "jmespath", "markupsafe", "mpmath", "multidict", "murmurhash", "parso", "pillow",
    "platformdirs", "pluggy", "preshed", "prompt-toolkit", "propcache", "pure-eval", "pycparser",
    "pydantic-settings", "pyjwt", "pyparsing", "pytest", "python-dateutil", "python-dotenv", "python-multipart",
    "pyzmq", "regex", "rpds-py", "ruff", "safetensors", "six", "smart-open", "sniffio", "sortedcontainers",
    "sse-starlette", "stack-data", "threadpoolctl", "tokenizers", "tornado", "truststore", "typing-inspection",
    "tzlocal", "uvloop", "wasabi", "wcwidth", "weasel", "wrapt", "yarl", "zipp",
}))
FILES_PER_DISTRIBUTION = 40
EXCERPT_CHARS = 1500
MIN_CHARS = 200


def package_code_cases(data_dir: Path) -> Iterator[Case]:
    """Up to two excerpts (the head and the middle) of up to FILES_PER_DISTRIBUTION files per package."""
    del data_dir  # these files come from the environment, not the dataset directory
    for name in DISTRIBUTIONS:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional package this setup lacks: the suite is smaller, not wrong
        files = sorted(str(f) for f in distribution.files or () if str(f).endswith(".py"))
        step = max(1, len(files) // FILES_PER_DISTRIBUTION)
        for relative in files[::step][:FILES_PER_DISTRIBUTION]:
            path = Path(str(distribution.locate_file(relative)))
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            key = f"{name}/{relative}"
            split = text_split(key)
            yield from file_cases(CODE, key, text, split, "benign-code", name)


def file_cases(source: Source, key: str, text: str, split: Split, tag: str, package: str) -> Iterator[Case]:
    """A benign tool result per excerpt of `text`, as a file-reading tool returns it (for any source of files)."""
    for part, excerpt in _excerpts(text):
        yield make_case(
            source,
            f"{key}#{part}",
            kind=SubjectKind.TOOL_RESULT,
            expect="allow",
            text=excerpt,
            split=split,
            server="filesystem",
            tool="read_file",
            tags=[tag, f"package:{package}"],
        )


def _excerpts(text: str) -> Iterator[tuple[str, str]]:
    if len(text.strip()) < MIN_CHARS:
        return
    yield "head", _cut(text, 0)
    if len(text) > 2 * EXCERPT_CHARS:
        middle = text.find("\n", len(text) // 2) + 1
        yield "middle", _cut(text, middle)


def _cut(text: str, start: int) -> str:
    """EXCERPT_CHARS of `text` from `start`, ending at a line end where there is one."""
    end = start + EXCERPT_CHARS
    if end < len(text):
        line_end = text.rfind("\n", start, end)
        end = line_end if line_end > start + EXCERPT_CHARS // 2 else end
    return text[start:end].strip("\n")


def package_doc_cases(data_dir: Path) -> Iterator[Case]:
    """Up to two excerpts (the head and the middle) of each package's README."""
    del data_dir
    for name in DOC_DISTRIBUTIONS:
        try:
            metadata = importlib.metadata.distribution(name).metadata
        except importlib.metadata.PackageNotFoundError:
            continue
        text = str(metadata.get_payload() or metadata.get("Description") or "")
        yield from file_cases(DOCS, name, text, text_split(name), "benign-docs", name)
