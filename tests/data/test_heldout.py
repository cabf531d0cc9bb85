from dataclasses import replace

import numpy as np
import pytest

from mixqsam2.data.formats import read_label_png
from mixqsam2.data.heldout import (
    MIN_PIXELS, PATCH, cached_heldout_set, heldout_image, heldout_rng, heldout_video, sample_heldout_scene,
    write_heldout_image_set, write_heldout_video_set,
)
from mixqsam2.data.loaders import CocoImages, open_video_set
from mixqsam2.fileio import LISTING


def _plain(scene):
    """The scene without photometric effects (drift, blur, noise)."""
    return replace(scene, drift=np.zeros(4), blur=0.0, noise=0.0)


def test_same_seed_and_index_give_the_same_video_and_others_differ():
    frames, labels = heldout_video(seed=3, index=1, frames=3, height=120, width=160)
    again, again_labels = heldout_video(seed=3, index=1, frames=3, height=120, width=160)
    assert all((a == b).all() for a, b in zip(frames + labels, again + again_labels))
    for seed, index in ((4, 1), (3, 2)):
        other = heldout_video(seed=seed, index=index, frames=1, height=120, width=160)[0][0]
        assert np.abs(other.astype(int) - frames[0]).mean() > 5


def test_held_out_seed_space_is_apart_from_synth_sets_and_training():
    from mixqsam2.data.synth import scene_rng

    for seed in (0, 1, 7):
        for index in range(4):
            held = {kind: heldout_rng(kind, seed, index).random(4).tolist() for kind in ("images", "videos")}
            others = [scene_rng("images", seed, index), scene_rng("videos", seed, index),
                      np.random.default_rng([seed, index]), np.random.default_rng([seed, index, 0, 0]),
                      *(np.random.default_rng([seed, step, k, index]) for step in range(4) for k in (0, 1))]
            assert held["images"] != held["videos"]
            assert not {tuple(d) for d in held.values()} & {tuple(rng.random(4)) for rng in others}


def test_every_target_is_visible_on_frame_zero_with_consecutive_ids():
    for index in range(5):
        scene = sample_heldout_scene(heldout_rng("videos", 0, index))
        counts = np.bincount(scene.render(0)[1].ravel(), minlength=256)
        assert (counts[1 : scene.num_targets + 1] >= MIN_PIXELS).all()
        assert not counts[scene.num_targets + 1 :].any()
    rgb, labels = heldout_image(0, 0)
    assert rgb.shape == (240, 320, 3) and labels.max() >= 2


def test_sets_load_with_the_davis_and_coco_loaders(tmp_path):
    write_heldout_video_set(tmp_path / "videos", num=2, frames=3, seed=0, height=120, width=160)
    videos = open_video_set(tmp_path / "videos")
    assert [v.name for v in videos] == ["vid0000", "vid0001"]
    frames, labels = heldout_video(0, 1, frames=3, height=120, width=160)
    assert videos[1].frame_names == ["00000", "00001", "00002"]
    assert (read_label_png(tmp_path / "videos" / "Annotations" / "vid0001" / "00002.png") == labels[2]).all()
    assert sorted(videos[1].prompt_masks()) == list(range(1, labels[0].max() + 1))

    write_heldout_image_set(tmp_path / "images", num=3, seed=0)
    samples = list(CocoImages.from_dir(tmp_path / "images"))
    assert len(samples) == 3
    rgb, labels = heldout_image(0, 2)
    masks = samples[2].masks.values()
    assert len(masks) == sum((labels == k).sum() >= MIN_PIXELS for k in range(1, labels.max() + 1)) >= 2
    assert {int(m.sum()) for m in masks} <= {int((labels == k).sum()) for k in range(1, labels.max() + 1)}
    assert np.abs(samples[2].rgb().astype(int) - rgb).mean() < 3  # JPEG round trip


def test_the_camera_pans_the_background_and_a_still_camera_does_not():
    scene = _plain(sample_heldout_scene(heldout_rng("videos", 0, 2)))
    empty = replace(scene, objects=[], poles=[])
    assert np.abs(empty.render(10)[0].astype(int) - empty.render(0)[0]).mean() > 2
    still = replace(empty, camera=replace(scene.camera, amp=np.zeros((3, 2))))
    assert (still.render(10)[0] == still.render(0)[0]).all()


def test_labels_follow_the_pixels_through_the_camera_window():
    """A still object, uniformly coloured on a uniform world: only the camera moves it, and every
    labelled pixel is the object's colour, every other one the world's."""
    scene = _plain(sample_heldout_scene(heldout_rng("videos", 0, 3)))
    target = next(o for o in scene.objects if o.label == 1)
    target = replace(target, path=target.path[:1], spin=0.0, pulse=0.0,
                     texture=np.full((PATCH, PATCH, 3), (250, 0, 250), np.uint8))
    scene = replace(scene, objects=[target], poles=[], background=np.full_like(scene.background, 40))
    first, moved = scene.render(0), scene.render(15)
    assert (first[1] != moved[1]).sum() > 50
    for rgb, labels in (first, moved):
        assert (labels == 1).sum() >= MIN_PIXELS
        assert (rgb[labels == 1] == (250, 0, 250)).all() and (rgb[labels == 0] == 40).all()


def _centre(obj, t):
    return obj.placement(t) @ (PATCH / 2, PATCH / 2, 1)


def test_videos_have_camouflage_look_alikes_crossing_paths_poles_and_targets_that_return():
    found = {"camouflaged": 0, "objects": 0, "look_alikes": 0, "poles": 0, "leavers": 0}
    for index in range(12):
        scene = sample_heldout_scene(heldout_rng("videos", 5, index), 120, 160)
        found["camouflaged"] += sum(o.camouflaged for o in scene.objects)
        found["objects"] += len(scene.objects)
        found["poles"] += len(scene.poles)
        for alike in (o for o in scene.objects if o.label == 0):
            target = next((t for t in scene.objects if t.label and t.shape is alike.shape), None)
            if target is not None:  # a look-alike meets its target: its loop, the other way round
                gaps = [np.hypot(*(_centre(target, t) - _centre(alike, t))) for t in range(int(target.period) + 2)]
                assert min(gaps) < target.size / 2
                found["look_alikes"] += 1
        world_height, world_width = scene.background.shape[:2]
        for target in (o for o in scene.objects if o.label):
            xs, ys = target.path.T
            if xs.min() < 0 or ys.min() < 0 or xs.max() > world_width or ys.max() > world_height:
                series = [(scene.render(t)[1] == target.label).sum() for t in range(0, int(target.period), 4)]
                gone = np.nonzero(np.array(series) == 0)[0]
                assert gone.size and max(series[gone[0]:]) > 0  # it leaves, and comes back within a loop
                found["leavers"] += 1
    assert 0.2 < found["camouflaged"] / found["objects"] < 0.6, found
    assert found["look_alikes"] >= 3 and found["poles"] >= 3 and found["leavers"] >= 3, found


def test_cli_writes_a_held_out_set_and_refuses_a_non_empty_folder(tmp_path, capsys):
    from mixqsam2.cli.main import main

    out = tmp_path / "set"
    assert main(["synth", "videos", "--generator", "heldout", "--out", str(out), "--num", "1", "--frames", "2",
                 "--seed", "4"]) == 0
    labels = heldout_video(seed=4, index=0, frames=2)[1]
    assert (read_label_png(out / "Annotations" / "vid0000" / "00001.png") == labels[1]).all()
    capsys.readouterr()
    assert main(["synth", "images", "--generator", "heldout", "--out", str(out), "--num", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [LISTING, "Annotations", "JPEGImages"]


def test_cached_set_is_made_once_and_named_by_its_spec(tmp_path):
    path = cached_heldout_set(tmp_path, "images", num=1, seed=2, height=60, width=80)
    assert path.name == "heldout-images-num1-seed2-height60-width80-v2"
    stamp = (path / "annotations.json").stat().st_mtime_ns
    assert cached_heldout_set(tmp_path, "images", num=1, seed=2, height=60, width=80) == path
    assert (path / "annotations.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="unknown held-out set kind"):
        cached_heldout_set(tmp_path, "clips", num=1, seed=2)


def test_every_target_stands_out_from_its_surroundings_on_frame_0():
    """Camouflaged, yes; invisible, no: a validation target a person cannot see measures nothing."""
    from mixqsam2.data.heldout import MIN_CONTRAST, heldout_rng, sample_heldout_scene, target_contrast

    camouflaged = 0
    for index in range(12):
        scene = sample_heldout_scene(heldout_rng("videos", 3, index), 120, 160)
        rgb, labels = scene.render(0)
        camouflaged += sum(o.camouflaged and o.label > 0 for o in scene.objects)
        for label in range(1, scene.num_targets + 1):
            assert target_contrast(rgb, labels, label) >= MIN_CONTRAST
    assert camouflaged > 0  # the rule keeps camouflage, it only drops the invisible cases
