import json

import pytest

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import atomic_output_dir, write_json_atomic

OWNED = ("masks", "overlay.mp4", "stats.json")


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_output_dir_appears_only_when_complete(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("crash mid-run")
    assert _tree(tmp_path) == []  # no output, no temp folder
    with atomic_output_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _tree(tmp_path) == ["run", "run/new.txt"]


def test_an_empty_existing_folder_is_filled(tmp_path):
    (tmp_path / "run").mkdir()
    with atomic_output_dir(tmp_path / "run") as tmp:
        (tmp / "stats.json").write_text("{}")
    assert _tree(tmp_path) == ["run", "run/stats.json"]


def test_a_non_empty_folder_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not empty .*--overwrite"):
        with atomic_output_dir(out, owned=OWNED):
            pytest.fail("the block must not run")
    assert _tree(tmp_path) == ["run", "run/keep.txt"]


def test_overwrite_replaces_only_our_outputs(tmp_path):
    out = tmp_path / "run"
    (out / "masks" / "1").mkdir(parents=True)
    (out / "masks" / "1" / "00000.png").write_text("stale mask of an earlier run")
    (out / "overlay.mp4").write_text("stale overlay")
    (out / "keep.txt").write_text("mine")
    (out / "notes").mkdir()
    (out / "notes" / "n.txt").write_text("mine too")
    with atomic_output_dir(out, overwrite=True, owned=OWNED) as tmp:
        (tmp / "masks").mkdir()
        (tmp / "masks" / "00000.png").write_text("new mask")
        (tmp / "stats.json").write_text("new stats")
    # the user's files stay; masks/ is the new run's only; the stale overlay (owned, not rewritten) is gone
    assert _tree(tmp_path) == ["run", "run/keep.txt", "run/masks", "run/masks/00000.png", "run/notes",
                               "run/notes/n.txt", "run/stats.json"]
    assert (out / "keep.txt").read_text() == "mine" and (out / "stats.json").read_text() == "new stats"


def test_a_crash_with_overwrite_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "stats.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(out, overwrite=True, owned=OWNED) as tmp:
            (tmp / "stats.json").write_text("half")
            raise KeyboardInterrupt
    assert _tree(tmp_path) == ["run", "run/keep.txt", "run/stats.json"]
    assert (out / "stats.json").read_text() == "old"


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "run").write_text("a file")
    with pytest.raises(UserInputError, match="not a folder"):
        with atomic_output_dir(tmp_path / "run", overwrite=True):
            pass
    assert (tmp_path / "run").read_text() == "a file"


def test_json_write_is_atomic_and_refuses_unwritable_places(tmp_path):
    write_json_atomic(tmp_path / "a" / "r.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"x": 1}
    (tmp_path / "file").write_text("")
    with pytest.raises(UserInputError, match="cannot create output location"):
        write_json_atomic(tmp_path / "file" / "r.json", {})


def test_a_folder_filled_by_someone_else_meanwhile_is_not_touched(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UserInputError, match="filled by another program"):
        with atomic_output_dir(out, owned=OWNED) as tmp:
            (tmp / "stats.json").write_text("ours")
            out.mkdir()
            (out / "stats.json").write_text("theirs")
    assert _tree(tmp_path) == ["run", "run/stats.json"] and (out / "stats.json").read_text() == "theirs"


def test_outputs_get_the_usual_permissions_not_the_temporary_files_private_ones(tmp_path):
    import os
    import stat

    from mixqsam2.fileio import atomic_output_dir, write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {})
        with atomic_output_dir(tmp_path / "out") as folder:
            (folder / "f").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
