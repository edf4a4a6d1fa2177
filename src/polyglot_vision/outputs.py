"""Output folders and files that appear whole or not at all, and never replace what the tool did not write.

Every folder the tool writes (a prepared dataset, a model, a report, PolyDigits) is
built in a temporary sibling and swapped in whole, so an interrupted run leaves the
old result or the new one, never a mix. The finished folder carries a marker file;
an existing folder is replaced only when it is empty or carries that marker (or the
user passes `--overwrite`), and an output inside or equal to a source is refused.
Temporary siblings left by a killed run are removed by the next run into that folder.

Temporaries are made exclusively, with unpredictable names (`tempfile`), so a link planted
beside an output is never written through; a temporary folder carries a token file, and
only folders that carry it (real folders of this account, never links) are ever removed.
One run writes an output at a time: `output_lock` holds a lock file beside it.
A single file (`--output metrics.json`) replaces only a file the tool wrote (`WRITTEN_BY`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from filelock import FileLock, Timeout

from .errors import UserError

MARKER = ".polyglot-vision"
# Inside every temporary folder from the moment it exists: the proof that a leftover sibling is the tool's own.
TMP_TOKEN = ".polyglot-vision-tmp"
# The key by which a single-file output (metrics JSON) says that the tool wrote it.
WRITTEN_BY = "written_by"
TOOL = "polyglot-vision"
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

    Only the tool's own are touched: real folders (never links) of this account that carry
    the token (a temporary) or the marker (an old folder set aside). A run killed between
    setting the old folder aside and renaming the new one in (where the system cannot
    exchange two folders in one step) left no `output_dir`: the old one is put back.
    """
    parent = output_dir.parent
    if not parent.is_dir():
        return
    for prefix in (_OLD, _TMP):
        start = f".{output_dir.name}{prefix}"
        for path in sorted(p for p in parent.iterdir() if p.name.startswith(start)):
            pid = path.name[len(start) :].split("-", 1)[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if not _owned_folder(path, TMP_TOKEN if prefix == _TMP else MARKER):
                continue
            if prefix == _OLD and not os.path.lexists(output_dir):
                os.replace(path, output_dir)
                continue
            shutil.rmtree(path, ignore_errors=True)


def _owned_folder(path: Path, token: str) -> bool:
    """A real folder (not a link) of this account holding `token` as a regular file."""
    try:
        folder, inside = os.lstat(path), os.lstat(path / token)
    except OSError:
        return False
    return (
        stat.S_ISDIR(folder.st_mode)
        and folder.st_uid == os.getuid()
        and stat.S_ISREG(inside.st_mode)
        and inside.st_uid == os.getuid()
    )


def make_temp_dir(output_dir: str | Path) -> Path:
    """A new, private, exclusively created folder beside `output_dir`, named unpredictably, with its token."""
    output_dir = Path(output_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}{_TMP}{os.getpid()}-", dir=output_dir.parent))
    fd = os.open(tmp / TMP_TOKEN, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.close(fd)
    return tmp


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
    with output_lock(output_dir, what=what):
        remove_stale_siblings(output_dir)
        with machine_faults(output_dir, what):
            output_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = make_temp_dir(output_dir)
        try:
            with machine_faults(output_dir, what, cleanup=[tmp]):
                yield tmp
                publish(tmp, output_dir, carry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


_HELD: set[str] = set()  # lock files this process holds: a run that nests outputs takes each lock once


@contextmanager
def output_lock(output: str | Path, what: str = "output") -> Iterator[None]:
    """Hold the lock file beside `output` for the block; a second run into the same output is refused.

    The lock file is opened without following links (a link planted at its name is refused)
    and removed before it is released, so a finished run leaves nothing beside its output.
    """
    output = Path(output).expanduser()
    path = output.parent / f".{output.name}.lock"
    key = os.path.abspath(path)
    if key in _HELD:
        yield
        return
    made = [folder for folder in (output.parent, *output.parent.parents) if not folder.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        try:
            lock.acquire()
        except Timeout:
            raise UserError(
                f"{what} {output}: another polyglot-vision run is writing it (lock {path}); "
                "wait for it to finish, or choose another output"
            ) from None
        except OSError as err:
            raise UserError(f"{what} {output}: cannot take its lock {path} ({err.strerror or err})") from None
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            try:  # removed while held: a waiter that opened the old file sees it unlinked and starts again
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
            except OSError:
                pass
            lock.release()
    finally:
        for folder in made:  # folders made only to hold the lock go again when nothing else was written there
            try:
                folder.rmdir()
            except OSError:
                break


def claim(output_dir: str | Path) -> Path:
    """Create `output_dir` (checked with `check_output_dir` first) and mark it as the tool's own."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(output_dir / MARKER, "written by polyglot-vision; this folder may be replaced by its next run\n")
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
        (output_dir / TMP_TOKEN).unlink(missing_ok=True)
        return
    if _exchange(new, output_dir):  # one step: at every moment `output_dir` is the old folder or the new
        old = new
    else:
        old = output_dir.parent / f".{output_dir.name}{_OLD}{os.getpid()}-{os.urandom(3).hex()}"
        os.replace(output_dir, old)
        os.replace(new, output_dir)
    (output_dir / TMP_TOKEN).unlink(missing_ok=True)
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
    """Write UTF-8 text through an exclusively created temporary file beside `path`, then a rename.

    The rename replaces a link at `path` itself, never the file it points to.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it private; an output is as readable as any file made here
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with _suppress_missing():
            os.unlink(tmp)
        raise
    return path


@contextmanager
def _suppress_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


def write_json(path: str | Path, data: dict) -> Path:
    """Write `data` as indented UTF-8 JSON, through a temporary file and a rename."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def check_output_file(path: str | Path, *, overwrite: bool = False, what: str = "--output") -> Path:
    """Refuse a single-file output that would replace a file the tool did not write (without `overwrite`).

    A file is the tool's when it is a regular file (not a link) holding a JSON object whose
    `WRITTEN_BY` key names the tool; `write_owned_json` writes such files.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{what} {path}: is a folder; give a file name")
    if os.path.lexists(path) and not overwrite and not _written_by_us(path):
        raise UserError(
            f"{what} {path}: exists and polyglot-vision did not write it; choose another file, "
            "or pass --overwrite to replace it"
        )
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: {probe} is not a writable folder")
    return path


def _written_by_us(path: Path) -> bool:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or os.lstat(path).st_size > 64 << 20:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get(WRITTEN_BY) == TOOL


def write_owned_json(path: str | Path, data: dict, *, overwrite: bool = False, what: str = "--output") -> Path:
    """`write_json` of a single-file output, marked as the tool's; replaces only a file the tool wrote."""
    path = check_output_file(path, overwrite=overwrite, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(path, what=what):
        return write_json(path, {WRITTEN_BY: TOOL, **data})
