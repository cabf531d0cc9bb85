import json
import shutil

import pytest

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import LISTING, atomic_output_dir, write_json_atomic


def _tree(folder):
    """Every path under ``folder`` but our listings of written files."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != LISTING)


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
        with atomic_output_dir(out):
            pytest.fail("the block must not run")
    assert _tree(tmp_path) == ["run", "run/keep.txt"]


def test_overwrite_replaces_only_our_outputs(tmp_path):
    out = tmp_path / "run"
    with atomic_output_dir(out) as tmp:  # an earlier run of ours
        (tmp / "masks" / "1").mkdir(parents=True)
        (tmp / "masks" / "1" / "00000.png").write_text("stale mask of an earlier run")
        (tmp / "overlay.mp4").write_text("stale overlay")
    (out / "keep.txt").write_text("mine")
    (out / "masks" / "mine.png").write_text("mine, inside our folder")
    (out / "notes").mkdir()
    (out / "notes" / "n.txt").write_text("mine too")
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "masks").mkdir()
        (tmp / "masks" / "00000.png").write_text("new mask")
        (tmp / "stats.json").write_text("new stats")
    # the user's files stay, in our folders too; the earlier run's files this one did not write go
    assert _tree(tmp_path) == ["run", "run/keep.txt", "run/masks", "run/masks/00000.png", "run/masks/mine.png",
                               "run/notes", "run/notes/n.txt", "run/stats.json"]
    assert (out / "keep.txt").read_text() == "mine" and (out / "stats.json").read_text() == "new stats"


def test_overwrite_without_a_listing_removes_nothing(tmp_path):
    out = tmp_path / "run"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "00007.png").write_text("someone's")
    (out / "stats.json").write_text("someone's stats")
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "stats.json").write_text("new stats")
    assert _tree(tmp_path) == ["run", "run/masks", "run/masks/00007.png", "run/stats.json"]
    assert (out / "stats.json").read_text() == "new stats"


def test_a_file_where_our_folder_goes_is_refused_and_kept(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "masks").write_text("a file named like our folder")
    with pytest.raises(UserInputError, match="in the way; nothing was written"):
        with atomic_output_dir(out, overwrite=True) as tmp:
            (tmp / "masks").mkdir()
            (tmp / "masks" / "00000.png").write_text("new mask")
            (tmp / "stats.json").write_text("new stats")
    assert _tree(tmp_path) == ["run", "run/masks"] and (out / "masks").read_text() == "a file named like our folder"


def test_a_crash_with_overwrite_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "stats.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(out, overwrite=True) as tmp:
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
        with atomic_output_dir(out) as tmp:
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


def test_checking_an_output_location_creates_nothing_and_a_folder_is_no_file(tmp_path):
    from mixqsam2.fileio import check_output_file, ensure_writable_parent

    ensure_writable_parent(tmp_path / "a" / "b" / "r.json")
    assert not (tmp_path / "a").exists()
    with pytest.raises(UserInputError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(UserInputError, match="is a folder"):
        write_json_atomic(tmp_path, {})


def _listing(folder):
    return json.loads((folder / LISTING).read_text())


def test_the_listing_names_this_runs_files_only_and_a_third_run_prunes_by_it(tmp_path):
    out = tmp_path / "run"
    with atomic_output_dir(out, kind="stream") as tmp:
        (tmp / "masks").mkdir()
        for name in ("00000.png", "00001.png"):
            (tmp / "masks" / name).write_text("first")
    (out / "masks" / "mine.png").write_text("the user's")
    assert _listing(out) == {"kind": "stream", "files": ["masks/00000.png", "masks/00001.png"]}
    with atomic_output_dir(out, overwrite=True, kind="stream") as tmp:
        (tmp / "masks").mkdir()
        (tmp / "masks" / "00000.png").write_text("second")
    assert _listing(out) == {"kind": "stream", "files": ["masks/00000.png"]}  # never the user's mine.png
    with atomic_output_dir(out, overwrite=True, kind="stream") as tmp:
        (tmp / "stats.json").write_text("third")
    assert _tree(tmp_path) == ["run", "run/masks", "run/masks/mine.png", "run/stats.json"]


def test_another_kind_of_run_removes_nothing_of_the_first_and_lists_both(tmp_path):
    out = tmp_path / "export"
    with atomic_output_dir(out, kind="export") as tmp:
        (tmp / "manifest.json").write_text("{}")
    with atomic_output_dir(out, overwrite=True, kind="build config") as tmp:
        (tmp / "build_config.json").write_text("{}")
    assert _tree(tmp_path) == ["export", "export/build_config.json", "export/manifest.json"]
    assert _listing(out)["files"] == ["build_config.json", "manifest.json"]


def test_a_listing_naming_files_outside_the_folder_removes_none_of_them(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("the user's")
    out = tmp_path / "run"
    out.mkdir()
    (out / LISTING).write_text(json.dumps({"kind": "stream", "files": ["../precious.txt", str(outside), "a\0b"]}))
    with atomic_output_dir(out, overwrite=True, kind="stream") as tmp:
        (tmp / "stats.json").write_text("new")
    assert outside.read_text() == "the user's"


def test_nothing_is_written_or_removed_through_a_symbolic_link(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "00000.png").write_text("the user's")
    out = tmp_path / "run"
    with atomic_output_dir(out, kind="stream") as tmp:
        (tmp / "masks").mkdir()
        (tmp / "masks" / "00000.png").write_text("ours")
    shutil.rmtree(out / "masks")
    (out / "masks").symlink_to(precious)
    with pytest.raises(UserInputError, match="in the way"):
        with atomic_output_dir(out, overwrite=True, kind="stream") as tmp:
            (tmp / "masks").mkdir()
            (tmp / "masks" / "00000.png").write_text("new")
    assert (precious / "00000.png").read_text() == "the user's"
    with atomic_output_dir(out, overwrite=True, kind="stream") as tmp:  # the stale masks/00000.png: not followed
        (tmp / "stats.json").write_text("new")
    assert (precious / "00000.png").read_text() == "the user's"


def test_an_existing_folder_is_filled_from_inside_it_and_a_leftover_temporary_folder_blocks_nothing(tmp_path):
    out = tmp_path / "usb"
    out.mkdir()
    (out / ".usb.killed.tmp").mkdir()  # what a run killed while writing leaves
    with atomic_output_dir(out) as tmp:
        assert tmp.parent == out  # same file system as the folder: a mount point works
        (tmp / "stats.json").write_text("new")
    assert (out / "stats.json").read_text() == "new"


def test_an_empty_folder_filled_by_someone_else_meanwhile_is_not_touched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(UserInputError, match="filled by another program"):
        with atomic_output_dir(out) as tmp:
            (tmp / "stats.json").write_text("ours")
            (out / "stats.json").write_text("theirs")
    assert _tree(tmp_path) == ["run", "run/stats.json"] and (out / "stats.json").read_text() == "theirs"


@pytest.mark.parametrize("maker", ["mkdtemp", "mkstemp"])
def test_a_place_that_refuses_our_temporary_file_is_one_user_error(tmp_path, monkeypatch, maker):
    """A folder that passes the access check but refuses files (a pseudo file system such as
    /proc, a read-only mount seen by root) is bad input, not a traceback."""
    import tempfile

    def refuse(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tempfile, maker, refuse)
    with pytest.raises(UserInputError, match=f"cannot write in {tmp_path}: No such file"):
        if maker == "mkdtemp":
            with atomic_output_dir(tmp_path / "run"):
                pass
        else:
            write_json_atomic(tmp_path / "plan.json", {})
    assert list(tmp_path.iterdir()) == []
