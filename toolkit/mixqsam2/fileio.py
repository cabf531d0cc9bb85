"""Atomic outputs: a crash or a bad input never leaves a half-written file or folder.

Files go to a temporary sibling and are renamed into place; output folders are filled as a
temporary sibling folder and renamed when complete. Nothing of the user's is ever deleted: a
non-empty output folder is refused unless the caller overwrites, and then only our own
outputs in it are replaced (:func:`atomic_output_dir`).

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
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

from mixqsam2.errors import UserInputError


def ensure_writable_parent(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be created (its parent exists or can be made, and is writable)."""
    path = Path(path)
    parent = path.parent.resolve()
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create output location {path}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise UserInputError(f"output location {path} is not writable")
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename."""
    path = ensure_writable_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    path = ensure_writable_parent(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"output folder {path} exists and is not a folder")
    if not overwrite and path.is_dir() and any(path.iterdir()):
        raise UserInputError(f"output folder {path} is not empty (give --overwrite to replace our outputs in it)")
    return path


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False, owned: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder whose contents become ``path`` only if the block completes.

    A missing or empty ``path`` is the temporary folder renamed into place. An existing
    non-empty ``path`` is refused (:func:`check_output_dir`) unless ``overwrite``; then each
    entry the block wrote replaces the entry of that name, entries named in ``owned`` that
    the block did not write (stale outputs of an earlier run) go, and every other file stays.
    If the block raises (or is interrupted), the temporary folder is removed and ``path`` is
    untouched. SIGINT/SIGTERM wait while the results are moved into place.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> out.mkdir(); (out / "keep.txt").write_text("mine"); (out / "stats.json").write_text("old")
    4
    3
    >>> with atomic_output_dir(out, overwrite=True, owned=("masks", "stats.json")) as tmp:
    ...     _ = (tmp / "stats.json").write_text("new")
    >>> sorted(p.name for p in out.iterdir()), (out / "stats.json").read_text()
    (['keep.txt', 'stats.json'], 'new')
    """
    path = check_output_dir(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with _signals_deferred():
        if overwrite and path.is_dir() and any(path.iterdir()):
            _replace_entries(tmp, path, owned)
            return
        try:
            os.replace(tmp, path)  # rename over a missing or empty folder; refused over a non-empty one
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserInputError(f"output folder {path} was filled by another program while this one ran; "
                                 "nothing was written") from None


def _replace_entries(new: Path, target: Path, owned: tuple[str, ...]) -> None:
    """Move every entry of ``new`` into ``target`` (replacing same-named ones) and drop the
    ``owned`` entries of ``target`` that ``new`` does not have; ``new`` is removed."""
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    try:
        for name in {*owned, *(p.name for p in new.iterdir())}:
            if os.path.lexists(target / name):
                os.replace(target / name, trash / name)
            if os.path.lexists(new / name):
                os.replace(new / name, target / name)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(new, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM back (delivered on exit) while results are moved into place."""
    signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
