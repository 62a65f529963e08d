"""The install record: what each wrapped entry was before ``install`` touched it.

One JSON file per user (``Environment.state_dir / "installs.json"``), never inside a client's config:
clients reject or warn about keys they do not know, and a project's config is often committed.
For each wrapped entry it keeps the original value, the value ``install`` wrote, and the original
text, so ``uninstall`` can give back the very bytes the user had. The record holds what the config
held (env values included), so it is written readable by its owner only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from .configdoc import EntrySource, TablePath
from .errors import ClientConfigError

__all__ = ["FileWrite", "InstallRecord", "InstallState", "digest", "load_state", "save_state", "state_path"]


class InstallRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    table: TablePath
    name: str
    original: JsonValue
    wrapped: JsonValue
    entry_text: str | None = None
    key_texts: dict[str, str] = {}
    installed_at: str

    @property
    def key(self) -> tuple[str, TablePath, str]:
        return (self.file, self.table, self.name)

    @property
    def source(self) -> EntrySource:
        return EntrySource(entry_text=self.entry_text, key_texts=self.key_texts)


KEPT_TEXT_LIMIT = 1 << 20  # a file's text before install is kept in the record up to this size (else: its backup)


class FileWrite(BaseModel):
    """One file install wrote: its text before (kept, or in the backup) and a digest of the text written. While
    the file still holds exactly that, uninstall gives back the text before, byte for byte, whatever the format.
    A second write to the file (install run again after new entries) ends that: `writes` counts them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    before_sha256: str
    after_sha256: str
    before_text: str | None = None
    backup: str | None = None
    writes: int = 1

    def original(self, current: str) -> str | None:
        """The text to give back when `current` is what install wrote, or None."""
        if self.writes != 1 or digest(current) != self.after_sha256:
            return None
        text = self.before_text
        if text is None and self.backup is not None:
            try:
                text = Path(self.backup).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                return None
        return text if text is not None and digest(text) == self.before_sha256 else None


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class InstallState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    records: tuple[InstallRecord, ...] = ()
    files: tuple[FileWrite, ...] = ()

    def file_write(self, file: str) -> FileWrite | None:
        return next((write for write in self.files if write.file == file), None)

    def wrote(self, file: str, before: str, after: str, backup: Path | None) -> InstallState:
        """This state with install's write of `after` over `before` to `file` counted."""
        previous = self.file_write(file)
        write = FileWrite(
            file=file,
            before_sha256=digest(before),
            after_sha256=digest(after),
            before_text=before if len(before) <= KEPT_TEXT_LIMIT else None,
            backup=str(backup) if backup is not None else None,
            writes=previous.writes + 1 if previous is not None else 1,
        )
        return self.model_copy(update={"files": (*[w for w in self.files if w.file != file], write)})

    def forgot(self, files: set[str]) -> InstallState:
        return self.model_copy(update={"files": tuple(w for w in self.files if w.file not in files)})

    def find(self, file: str, table: TablePath, name: str) -> InstallRecord | None:
        for record in self.records:
            if record.key == (file, table, name):
                return record
        return None

    def updated(self, added: tuple[InstallRecord, ...], removed: tuple[InstallRecord, ...]) -> InstallState:
        gone = {record.key for record in (*added, *removed)}
        kept = tuple(record for record in self.records if record.key not in gone)
        return InstallState(records=(*kept, *added), files=self.files)


def state_path(state_dir: Path) -> Path:
    return state_dir / "installs.json"


def load_state(path: Path) -> InstallState:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return InstallState()
    except OSError as exc:
        raise ClientConfigError(f"{path}: the install record cannot be read ({exc.strerror})") from exc
    try:
        return InstallState.model_validate_json(text)
    except ValidationError as exc:
        raise ClientConfigError(
            f"{path}: the install record is damaged ({exc.errors()[0]['msg']}); nothing was changed. Move it "
            "away and run again: uninstall then restores wrapped entries from their command lines"
        ) from exc


def save_state(path: Path, state: InstallState) -> None:
    """Write atomically, readable by the owner only: the record holds the configs' env values."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                # escaped: a config may hold a lone surrogate ("\\ud800"), which UTF-8 cannot encode raw
                handle.write(json.dumps(state.model_dump(mode="json"), indent=2, ensure_ascii=True) + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ClientConfigError(f"{path}: the install record cannot be written ({exc.strerror or exc})") from exc
