"""Output folders and files that appear whole or not at all, and never replace what the tool did not write.

Every folder the tool writes (a prepared dataset, a model, a report, PolyDigits) is
built in a temporary sibling and swapped in whole, so an interrupted run leaves the
old result or the new one, never a mix. The finished folder carries a marker file;
an existing folder is replaced only when it is empty or carries that marker (or the
user passes `--overwrite`), and an output inside or equal to a source is refused.
Temporary siblings left by a killed run are removed by the next run into that folder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError

MARKER = ".polyglot-vision"
_TMP, _OLD = ".tmp-", ".old-"


def is_ours(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def is_inside(path: Path, folder: Path) -> bool:
    """`path` is `folder` or lies below it (both resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_output_dir(
    output_dir: str | Path, *, overwrite: bool = False, sources: Iterable[str | Path] = (), what: str = "output folder"
) -> Path:
    """Refuse an output the tool may not replace: a file, a folder of someone else's, a source's folder."""
    output_dir = Path(output_dir).expanduser()
    for source in sources:  # an image folder or a manifest file: never written into, never replaced
        source = Path(source).expanduser()
        if source.exists() and (is_inside(output_dir, source) or is_inside(source, output_dir)):
            raise UserError(f"{what} {output_dir}: overlaps the source {source}; choose a folder outside it")
    if output_dir.exists():
        if not output_dir.is_dir():
            raise UserError(f"{what} {output_dir}: exists and is not a folder")
        if not overwrite and not is_ours(output_dir):
            strangers = sorted(p.name for p in output_dir.iterdir())
            if strangers:
                raise UserError(
                    f"{what} {output_dir}: holds files polyglot-vision did not write ({', '.join(strangers[:3])}"
                    f"{', …' if len(strangers) > 3 else ''}); choose another folder, or pass --overwrite to replace it"
                )
    probe = output_dir.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {output_dir}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {output_dir}: {probe} is not writable")
    return output_dir


# Failures of the machine rather than of the program: the user frees space or picks another folder.
MACHINE_FAULTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "it is on a read-only file system",
    errno.EACCES: "it is not writable (permission denied)",
    errno.EPERM: "it is not writable (operation not permitted)",
}


# The same faults as libraries written in Rust or C++ (safetensors, torch.save) report them: in the message.
_FAULT_TEXT = {
    "No space left on device": errno.ENOSPC,
    "os error 28": errno.ENOSPC,
    "kind: StorageFull": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
    "os error 30": errno.EROFS,
    "kind: ReadOnlyFilesystem": errno.EROFS,
}


def fault_errno(err: BaseException) -> int | None:
    """The errno of a full disk or an unwritable folder behind `err`, or None for any other error."""
    if isinstance(err, OSError):
        return err.errno if err.errno in MACHINE_FAULTS else None
    text = str(err)
    return next((code for marker, code in _FAULT_TEXT.items() if marker in text), None)


@contextmanager
def machine_faults(
    folder: str | Path, what: str = "output folder", cleanup: Iterable[str | Path] = ()
) -> Iterator[None]:
    """Turn a full disk or a read-only folder met inside the block into one line naming `folder`.

    `cleanup` names temporary folders of the tool's own to remove when the block fails, so
    that a full disk is not kept full by what the failed write left behind.
    """
    try:
        yield
    except BaseException as err:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
        code = None if isinstance(err, UserError) else fault_errno(err)
        if code is None:
            raise
        filename = getattr(err, "filename", None)
        where = f" (writing {filename})" if filename else ""
        raise UserError(
            f"{what} {folder}: cannot be written, {MACHINE_FAULTS[code]}{where}; free space or choose another folder"
        ) from None


def remove_stale_siblings(output_dir: Path) -> None:
    """Temporary siblings of `output_dir` left by a killed run (their process is gone).

    A run killed between setting the old folder aside and renaming the new one in (where
    the system cannot exchange two folders in one step) left no `output_dir`: the old one
    is put back.
    """
    parent = output_dir.parent
    if not parent.is_dir():
        return
    for prefix in (_OLD, _TMP):
        for path in sorted(parent.glob(f".{output_dir.name}{prefix}*")):
            pid = path.name.rsplit("-", 2)[-2] if path.name.count("-") >= 2 else ""
            if pid.isdigit() and _alive(int(pid)):
                continue
            if prefix == _OLD and not output_dir.exists():
                os.replace(path, output_dir)
                continue
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_directory(
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    sources: Iterable[str | Path] = (),
    carry: Iterable[str] = (),
    what: str = "output folder",
) -> Iterator[Path]:
    """Yield a temporary sibling of `output_dir` to write into; on success it replaces `output_dir`.

    An error or an interrupt inside the block leaves `output_dir` as it was and removes the
    temporary folder. `carry` names entries of the old folder (globs, e.g. `checkpoint-*`)
    that move into the new one instead of being deleted with the old folder.
    """
    output_dir = check_output_dir(output_dir, overwrite=overwrite, sources=sources, what=what)
    remove_stale_siblings(output_dir)
    with machine_faults(output_dir, what):
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}{_TMP}{os.getpid()}-", dir=output_dir.parent))
    try:
        with machine_faults(output_dir, what, cleanup=[tmp]):
            yield tmp
            publish(tmp, output_dir, carry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def claim(output_dir: str | Path) -> Path:
    """Create `output_dir` (checked with `check_output_dir` first) and mark it as the tool's own."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).write_text("written by polyglot-vision; this folder may be replaced by its next run\n")
    return output_dir


def publish(new: Path, output_dir: Path, carry: Iterable[str] = ()) -> None:
    """Mark the complete folder `new` as the tool's own and rename it to `output_dir`.

    The old folder is set aside first and removed last; the entries of it that `carry`
    names (globs) move into the new one.
    """
    os.chmod(new, 0o755)  # mkdtemp makes it private
    claim(new)
    if not output_dir.exists():
        os.replace(new, output_dir)
        return
    if _exchange(new, output_dir):  # one step: at every moment `output_dir` is the old folder or the new
        old = new
    else:
        old = output_dir.parent / f".{output_dir.name}{_OLD}{os.getpid()}-{os.urandom(3).hex()}"
        os.replace(output_dir, old)
        os.replace(new, output_dir)
    for pattern in carry:
        for path in old.glob(pattern):
            if not (output_dir / path.name).exists():
                os.replace(path, output_dir / path.name)
    shutil.rmtree(old, ignore_errors=True)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, data: dict) -> Path:
    """Write `data` as indented UTF-8 JSON, through a temporary file and a rename."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
