import hashlib
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mixqsam2.data.formats import decode_rle, read_label_png
from mixqsam2.data.synth import render, sample_video_scene, write_video_set
from mixqsam2.fileio import LISTING


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_generators_are_deterministic_per_seed(tmp_path):
    write_video_set(tmp_path / "a", num=2, frames=4, seed=3)
    write_video_set(tmp_path / "b", num=2, frames=4, seed=3)
    write_video_set(tmp_path / "c", num=2, frames=4, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_coco_set_is_valid_coco_with_rle_masks_and_boxes(image_set):
    coco = json.loads((image_set / "annotations.json").read_text())
    assert len(coco["images"]) == 4 and coco["annotations"]
    for ann in coco["annotations"]:
        mask = decode_rle(ann["segmentation"])
        assert mask.sum() == ann["area"] == mask_utils.area(ann["segmentation"] | {"counts": ann["segmentation"]["counts"].encode()})
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert (image_set / "images" / coco["images"][ann["image_id"]]["file_name"]).is_file()


def test_video_set_has_davis_layout_and_palette_ids(video_set):
    vids = sorted(p.name for p in (video_set / "JPEGImages").iterdir())
    assert vids == ["vid0000", "vid0001"]
    for vid in vids:
        frames = sorted((video_set / "JPEGImages" / vid).iterdir())
        annotations = sorted((video_set / "Annotations" / vid).iterdir())
        assert [p.stem for p in frames] == [p.stem for p in annotations] == [f"{t:05d}" for t in range(20)]
        labels = read_label_png(annotations[0])
        ids = sorted(set(np.unique(labels)) - {0})
        assert ids == list(range(1, len(ids) + 1))


def test_videos_have_look_alikes_occluders_and_objects_that_leave_and_return():
    rng = np.random.default_rng(5)
    found = {"look_alike": False, "leaves_and_returns": False, "occluded": False}
    for _ in range(12):
        background, objects = sample_video_scene(rng, 120, 160)
        targets = [o for o in objects if o.label]
        found["look_alike"] |= any(o.label == 0 and any(o.shape is t.shape for t in targets) for o in objects)
        areas = {t.label: [] for t in targets}
        for t in range(0, 200, 4):
            _, labels = render(background, objects, float(t))
            for label in areas:
                areas[label].append(int((labels == label).sum()))
        for series in areas.values():
            series = np.array(series)
            gone = np.nonzero(series == 0)[0]
            found["leaves_and_returns"] |= gone.size > 0 and (series[gone[0]:] > 0).any()
            found["occluded"] |= series.min() < 0.5 * series.max()
    assert all(found.values()), found


def test_default_synth_images_are_not_training_images(tmp_path):
    """``synth images`` at its default seed (0) and training at its default seed (0) share no
    image: they draw from separate seed spaces (NumPy once made synth image k training image
    0 of step k)."""
    from PIL import Image

    from mixqsam2.data.synth import write_image_set
    from mixqsam2.train.config import TrainConfig
    from mixqsam2.train.data import training_image

    write_image_set(tmp_path / "set", num=6, seed=0)
    synth = [np.asarray(Image.open(p)).astype(int) for p in sorted((tmp_path / "set" / "images").iterdir())]
    seed, per_step = TrainConfig().seed, TrainConfig().image_batch
    for step in range(6):
        for index in range(per_step):
            rgb = training_image(seed, step, index)[0].astype(int)
            closest = min(np.abs(image - rgb).mean() for image in synth)  # JPEG round trip: ~1 grey level
            assert closest > 10, (step, index, closest)


def test_synth_refuses_a_non_empty_folder_and_overwrite_keeps_the_users_files(tmp_path, capsys):
    from mixqsam2.cli.main import main

    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    assert main(["synth", "images", "--out", str(out), "--num", "2"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert main(["synth", "images", "--out", str(out), "--num", "2", "--overwrite"]) == 0
    assert main(["synth", "images", "--out", str(out), "--num", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [LISTING, "annotations.json", "images", "keep.txt"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.jpg"]  # the new set only
    assert (out / "keep.txt").read_text() == "the user's"


def test_a_negative_seed_is_a_usage_error_of_one_line(tmp_path, capsys):
    from mixqsam2.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["synth", "images", "--out", str(tmp_path / "set"), "--num", "1", "--seed", "-5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "must be at least 0" in err[0], err
    assert err[0].startswith("mixqsam2 synth images: error:") and err[0].endswith("(see mixqsam2 synth images --help)")
