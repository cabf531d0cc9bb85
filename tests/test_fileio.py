import json

import pytest

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import atomic_output_dir, write_json_atomic


def test_output_dir_replaces_old_results_only_when_complete(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("crash mid-run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temp folder left
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    with atomic_output_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_json_write_is_atomic_and_refuses_unwritable_places(tmp_path):
    write_json_atomic(tmp_path / "a" / "r.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"x": 1}
    (tmp_path / "file").write_text("")
    with pytest.raises(UserInputError, match="cannot create output location"):
        write_json_atomic(tmp_path / "file" / "r.json", {})
