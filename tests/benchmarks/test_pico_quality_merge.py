"""benchmarks/pico_quality.py --merge: checkpoints scored in separate runs compared as in one."""

import importlib.util
import json
from pathlib import Path

import pytest

from mixqsam2.errors import UserInputError
from mixqsam2.eval.paired import paired_difference

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pico_quality.py"


@pytest.fixture(scope="module")
def pico_quality():
    spec = importlib.util.spec_from_file_location("pico_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scores(offset: float) -> dict:
    """One set's scores as pico_quality.evaluate writes them (only what the tables read)."""
    per_image = {str(i): 0.3 + 0.05 * i + offset for i in range(4)}
    per_object = {f"seed9003/vid000{i}#1": 0.2 + 0.1 * i + offset for i in range(3)}
    instance = {"instances": 4, "box_miou": 0.5, "fill": 0.4}
    return {"box_miou": 0.5 + offset, "box_fill_miou": 0.4, "instances": 4, "per_image": per_image,
            "box_miou_by_area": {"0-1000": instance}, "JF": 0.3 + offset, "first_mask_JF": 0.1, "objects": 3,
            "lost": 3, "per_object": per_object, "ms_per_frame": 50.0, "absent_share": 0.2, "empty_when_absent": 0.1}


def _write_run(path: Path, name: str, offset: float) -> str:
    run = {"checkpoints": {name: f"{name}.pt"}, "frames": 120, "video_seeds": [9003], "box_zoom": None,
           "track_zoom": None, "results": {name: {"train-gen": _scores(offset), "heldout": _scores(offset)}}}
    path.write_text(json.dumps(run))
    return str(path)


def test_merged_runs_pair_against_the_first(pico_quality, tmp_path, capsys):
    base = _write_run(tmp_path / "base.json", "base", 0.0)
    better = _write_run(tmp_path / "better.json", "better", 0.02)
    out = tmp_path / "merged.json"
    assert pico_quality.main(["--merge", base, better, "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert list(merged["results"]) == ["base", "better"]
    assert merged["checkpoints"] == {"base": "base.pt", "better": "better.pt"}
    runs = {name: json.loads(Path(p).read_text())["results"][name] for name, p in (("base", base), ("better", better))}
    for set_name in ("train-gen", "heldout"):
        diff = merged["comparisons"][f"better-base/{set_name}"]
        a, b = runs["better"][set_name], runs["base"][set_name]
        assert diff["box_miou"] == paired_difference(a["per_image"], b["per_image"])
        assert diff["JF"] == paired_difference(a["per_object"], b["per_object"])
        assert diff["box_miou"]["mean"] == pytest.approx(0.02)
    assert "| better-base/heldout | +0.020" in capsys.readouterr().out


def test_merge_refuses_other_units_names_and_zoom(pico_quality, tmp_path):
    base = _write_run(tmp_path / "base.json", "base", 0.0)
    again = _write_run(tmp_path / "again.json", "base", 0.01)
    with pytest.raises(UserInputError, match="appears twice"):
        pico_quality.merged_runs([base, again])
    other = json.loads(Path(base).read_text().replace('"base', '"other'))
    other["results"]["other"]["heldout"]["per_object"].pop("seed9003/vid0002#1")
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(UserInputError, match="other heldout video objects"):
        pico_quality.merged_runs([base, str(tmp_path / "other.json")])
    zoomed = json.loads(Path(base).read_text().replace('"base', '"zoomed'))
    zoomed["box_zoom"] = 0.3
    (tmp_path / "zoomed.json").write_text(json.dumps(zoomed))
    with pytest.raises(UserInputError, match="other zoom settings"):
        pico_quality.merged_runs([base, str(tmp_path / "zoomed.json")])


def test_bad_merge_is_one_line_exit_2(pico_quality, tmp_path, capsys):
    out = tmp_path / "merged.json"
    assert pico_quality.main(["--merge", str(tmp_path / "missing.json"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: no pico_quality result at {tmp_path / 'missing.json'}"]
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        pico_quality.parse_args(["--merge", "a.json", "--checkpoint", "x=y.pt"])
    assert exit_info.value.code == 2
