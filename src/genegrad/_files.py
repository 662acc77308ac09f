"""Writing files and folders the user points genegrad at: atomically, and only where genegrad may.

A file is written beside its target under a temporary name and renamed into place, so that a process killed at
any moment leaves either the old file or the new one. A folder genegrad writes (a gradient store, a report) is
built the same way and carries a marker file; genegrad replaces only folders holding its marker (or empty ones)
and never deletes anything else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class OutputError(ValueError):
    """An output path genegrad will not write: a file where a folder is needed, or a folder it does not own."""


def _sibling(target: Path, tag: str) -> Path:
    return target.parent / f".{target.name}.genegrad-{tag}-{uuid.uuid4().hex[:12]}"


def write_file_atomic(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``target``, then rename it onto ``target``.

    The rename is atomic on one file system: ``target`` (possibly the input being read) is never half-written.
    On failure the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    tmp = _sibling(target, "tmp").with_suffix(target.suffix)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


def check_folder_target(target: str | Path, marker: str, what: str) -> None:
    """Refuse ``target`` unless it is new, an empty folder, or a folder holding genegrad's ``marker``."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        msg = f"The {what} path {str(target)!r} is a file; pass a new folder."
        raise OutputError(msg)
    if target.is_dir() and not (target / marker).exists() and any(target.iterdir()):
        msg = (f"The {what} folder {str(target)!r} exists and was not written by genegrad (no {marker} in it); "
               "genegrad writes only into new or empty folders, or its own. Pass a new folder.")
        raise OutputError(msg)


class OwnedFolder:
    """A folder built under a temporary name beside ``target`` (:attr:`path`), then moved into place.

    :meth:`commit` replaces ``target`` when it is empty or holds ``marker`` (checked again at that moment);
    :meth:`discard` removes the temporary folder after a failure. ``marker`` is written by :meth:`commit` unless
    the caller wrote it.
    """

    def __init__(self, target: str | Path, marker: str, what: str) -> None:
        self.target = Path(target)
        self.marker, self.what = marker, what
        check_folder_target(self.target, marker, what)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = _sibling(self.target, "tmp")
        self.path.mkdir()
        self.done = False

    def commit(self) -> Path:
        """Move the folder into place; the previous genegrad folder there, if any, is removed."""
        check_folder_target(self.target, self.marker, self.what)
        if not (self.path / self.marker).exists():
            (self.path / self.marker).write_text("written by genegrad\n")
        old = None
        if self.target.is_dir() and (self.target / self.marker).exists():
            old = _sibling(self.target, "old")
            os.replace(self.target, old)
        elif self.target.is_dir():
            self.target.rmdir()  # empty: it becomes the folder
        os.replace(self.path, self.target)
        self.done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        """Remove the temporary folder of an uncommitted build."""
        if not self.done:
            shutil.rmtree(self.path, ignore_errors=True)
            self.done = True
