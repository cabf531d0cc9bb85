"""Atomic outputs: a crash or a bad input never leaves a half-written file or folder.

Files go to a temporary sibling and are renamed into place; an output folder is filled as a
temporary folder (beside it, or inside it when it exists) and appears, or its files are moved
in, only when complete. Nothing of the user's is ever deleted: a non-empty output folder is
refused unless the caller overwrites, and then only our own outputs in it are replaced
(:func:`atomic_output_dir`; each output folder lists the files we wrote in it).

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json_atomic(d / "r.json", {"miou": 0.5})
>>> json.loads((d / "r.json").read_text())["miou"]
0.5
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator

from mixqsam2.errors import UserInputError


def ensure_writable_parent(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` can be created: its nearest existing ancestor is a
    writable folder. Nothing is created yet (:func:`make_parent` does that when writing)."""
    path = Path(path)
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserInputError(f"cannot create output location {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK):
        raise UserInputError(f"output location {path} is not writable")
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """:func:`ensure_writable_parent` for an output file: a folder of that name is refused.

    >>> import tempfile
    >>> check_output_file(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    mixqsam2.errors.UserInputError: output file ... is a folder; give a file name
    """
    path = ensure_writable_parent(path)
    if path.is_dir():
        raise UserInputError(f"output file {path} is a folder; give a file name")
    return path


def make_parent(path: Path) -> None:
    """Create ``path``'s parent folders (checked by :func:`ensure_writable_parent`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create output location {path}: {exc.strerror}") from None


def _temporary(make, folder: Path, name: str):
    """``make`` (``tempfile.mkdtemp`` or ``mkstemp``) of a hidden ``.NAME.*.tmp`` in ``folder``;
    a folder that refuses it (read-only, a pseudo file system) is the user's input."""
    try:
        return make(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UserInputError(f"cannot write in {folder}: {exc.strerror or exc}") from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename."""
    path = check_output_file(path)
    make_parent(path)
    fd, tmp = _temporary(tempfile.mkstemp, path.parent, path.name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result gets the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike, missing: str):
    """The JSON value in ``path``; a missing file raises :class:`UserInputError` with the
    message ``missing``, an unreadable one names the file and the parse error.

    >>> import tempfile, pathlib
    >>> read_json(pathlib.Path(tempfile.mkdtemp()) / "plan.json", "plan not found")
    Traceback (most recent call last):
    ...
    mixqsam2.errors.UserInputError: plan not found
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(missing)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read {path}: {exc}") from None


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_figure_atomic(path: str | os.PathLike, figure, dpi: int = 110) -> None:
    """Save a matplotlib ``figure`` as PNG atomically, then close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi)
    plt.close(figure)
    write_bytes_atomic(path, buf.getvalue())


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an output folder that would hide the user's files: ``path`` must be absent, an
    empty folder, or (with ``overwrite``) any folder. Call it before any long work.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "keep.txt").write_text("mine")
    4
    >>> check_output_dir(d)
    Traceback (most recent call last):
    ...
    mixqsam2.errors.UserInputError: output folder ... is not empty (give --overwrite to replace our outputs in it)
    >>> check_output_dir(d, overwrite=True) == d
    True
    """
    path = Path(path)
    if path.is_dir():  # written into (a mount point's parent need not be writable)
        if not os.access(path, os.W_OK):
            raise UserInputError(f"output folder {path} is not writable")
    elif os.path.lexists(path):
        raise UserInputError(f"output folder {path} exists and is not a folder")
    else:
        ensure_writable_parent(path)
    if not overwrite and path.is_dir() and _entries(path):
        raise UserInputError(f"output folder {path} is not empty (give --overwrite to replace our outputs in it)")
    return path


LISTING = ".mixqsam2-outputs.json"  # in each output folder: what wrote it and the files it wrote there


def _entries(folder: Path, but: Path | None = None) -> list[Path]:
    """The entries of ``folder`` other than ``but`` and temporary folders of ours (a run killed
    while writing leaves one; it hides nothing of the user's)."""
    ours = re.compile(rf"\.{re.escape(folder.name)}\..+\.tmp")
    return [p for p in folder.iterdir() if p != but and not (p.is_dir() and ours.fullmatch(p.name))]


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False, kind: str = "",
                      on_commit: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield a temporary folder whose contents become ``path`` only if the block completes.

    A missing ``path`` is the temporary sibling folder renamed into place. An existing folder
    must be empty, or ``overwrite`` given (:func:`check_output_dir`); the temporary folder is
    then made inside it (same file system: a mount point works) and its files are moved in,
    each replacing the file of that name. ``kind`` says what writes the folder (e.g. "stream");
    with ``overwrite``, the files an earlier run of the same kind wrote there (its
    :data:`LISTING`) that this run did not write go; every other file stays, also inside our
    own subfolders. Nothing is written through a symbolic link to a folder. If the block
    raises (or is interrupted), the temporary folder is removed and ``path`` is untouched.
    SIGINT/SIGTERM wait while the results are moved into place; ``on_commit`` is called once
    they are, before a signal that waited is delivered.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with atomic_output_dir(out, kind="stream") as tmp:
    ...     _ = (tmp / "stats.json").write_text("old"); _ = (tmp / "overlay.mp4").write_text("old")
    >>> _ = (out / "keep.txt").write_text("mine")
    >>> with atomic_output_dir(out, overwrite=True, kind="stream") as tmp:
    ...     _ = (tmp / "stats.json").write_text("new")
    >>> sorted(p.name for p in out.iterdir() if p.name != LISTING), (out / "stats.json").read_text()
    (['keep.txt', 'stats.json'], 'new')
    """
    path = check_output_dir(path, overwrite)
    make_parent(path)
    existed = path.is_dir()
    tmp = Path(_temporary(tempfile.mkdtemp, path if existed else path.parent, path.name))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        with _signals_deferred():
            if existed:
                _move_into(tmp, path, overwrite, kind)
            else:
                _write_listing(tmp, kind, _written_files(tmp))
                _rename_into_place(tmp, path)
            if on_commit is not None:
                on_commit()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _written_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def _write_listing(folder: Path, kind: str, files) -> None:
    write_json_atomic(folder / LISTING, {"kind": kind, "files": sorted(files)})


def _earlier_outputs(folder: Path) -> tuple[str | None, set[str]]:
    """What wrote ``folder`` before and the files it listed, relative paths inside it only; an
    unreadable listing names nothing (then nothing is removed)."""
    try:
        listing = json.loads((folder / LISTING).read_text())
        kind, files = listing["kind"], set(listing["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, set()
    safe = (f for f in files if isinstance(f, str) and f and "\0" not in f and not Path(f).is_absolute())
    return kind, {f for f in safe if ".." not in Path(f).parts}


def _filled_meanwhile(path: Path) -> UserInputError:
    return UserInputError(f"output folder {path} was filled by another program while this one ran; "
                          "nothing was written")


def _rename_into_place(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)  # rename over a missing or empty folder; refused over a non-empty one
    except OSError:
        raise _filled_meanwhile(path) from None


def _through_a_link(path: Path, name: str) -> bool:
    """Whether a folder on the way from ``path`` to ``name`` is a symbolic link."""
    return any((path / folder).is_symlink() for folder in Path(name).parents[:-1])


def _check_writable(path: Path, name: str, stale: set[str]) -> None:
    """``path / name`` can be written: each folder on its way is a real folder (or absent) and
    the name itself is no folder; a stale file of ours in the way is fine (it goes first)."""
    if _through_a_link(path, name):
        raise UserInputError(f"cannot write {path / name}: a symbolic link is in the way; nothing was written")
    for folder in reversed(Path(name).parents[:-1]):
        target = path / folder
        if os.path.lexists(target) and not target.is_dir() and folder.as_posix() not in stale:
            raise UserInputError(f"cannot write {path / name}: {target} is in the way; nothing was written")
    if (path / name).is_dir() and not (path / name).is_symlink():
        raise UserInputError(f"cannot write {path / name}: a folder of that name is in the way; nothing was written")


def _move_into(tmp: Path, path: Path, overwrite: bool, kind: str) -> None:
    """Move the files of ``tmp`` (a folder inside ``path``) into ``path``; see :func:`atomic_output_dir`.

    The listing names every file that may be ours before any moves (a failure half-way leaves
    nothing of ours unlisted) and this run's files (plus, after another kind of run, that
    run's files) once they are in place."""
    if not overwrite and _entries(path, but=tmp):
        raise _filled_meanwhile(path)
    new = _written_files(tmp)
    earlier_kind, earlier = _earlier_outputs(path)
    stale = earlier - set(new) if earlier_kind == kind else set()
    for name in new:
        _check_writable(path, name, stale)
    _write_listing(path, kind, earlier | set(new))
    try:
        for name in sorted(stale):
            if not (path / name).is_dir() and not _through_a_link(path, name):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # gone already
                    os.unlink(path / name)
        _prune_empty_folders(path, stale)
        for name in new:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / name, path / name)
    except OSError as exc:
        raise UserInputError(f"moving the results into {path} failed half-way: {exc}") from None
    _write_listing(path, kind, set(new) if earlier_kind == kind else earlier | set(new))


def _prune_empty_folders(path: Path, removed: set[str]) -> None:
    """Remove the folders of ``removed`` files that are left empty, deepest first."""
    folders = {path / p for name in removed for p in Path(name).parents[:-1]}
    for folder in sorted(folders, key=lambda f: -len(f.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # refused unless empty


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM back while results are moved into place: they are noted and raised
    again on exit, for the handlers of before. (A signal mask would not do: with other threads
    running, torch's for one, the kernel hands the signal to one of them and Python runs its
    handler in the main thread at once.) Outside the main thread signals cannot reach Python
    code there anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        for signum in held:
            signal.raise_signal(signum)


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
