"""Atomic outputs: a crash or a bad input never leaves a half-written file or folder.

Files go to a temporary sibling and are renamed into place; output folders are filled as a
temporary sibling folder and renamed when complete.

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
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only if the block completes.

    An existing ``path`` is replaced as a whole (old results never mix with new ones).
    """
    path = ensure_writable_parent(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"output folder {path} exists and is not a folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
