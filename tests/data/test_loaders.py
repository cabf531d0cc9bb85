import shutil
import types

import numpy as np
import pytest

from mixqsam2.data.formats import write_mask_png
from mixqsam2.data.loaders import CocoImages, list_frames, open_davis, open_video_set
from mixqsam2.errors import UserInputError


def test_coco_loader_gives_masks_and_xyxy_boxes(image_set):
    samples = list(CocoImages.from_dir(image_set))
    assert len(samples) == 4
    for sample in samples:
        assert sample.rgb().shape == (240, 320, 3)
        for ann_id, mask in sample.masks.items():
            ys, xs = np.nonzero(mask)
            assert sample.boxes[ann_id] == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_davis_loader_reads_480p_subfolders_and_streams_frames(video_set, tmp_path):
    root = tmp_path / "davis"
    for kind in ("JPEGImages", "Annotations"):
        shutil.copytree(video_set / kind, root / kind / "480p")
    videos = open_davis(root)
    assert [v.name for v in videos] == ["vid0000", "vid0001"]
    frames = videos[0].frames()
    assert isinstance(frames, types.GeneratorType)
    assert next(frames).shape == (240, 320, 3)
    assert set(videos[0].prompt_masks()) == set(open_video_set(video_set)[0].prompt_masks())
    (root / "Annotations" / "480p" / "vid0000" / "00002.png").unlink()
    assert [videos[0].is_annotated(name) for name in videos[0].frame_names[:4]] == [True, True, False, True]
    assert videos[0].annotation("00002") is None


def test_sav_loader_reads_per_object_folders_at_6fps(video_set, tmp_path):
    root = tmp_path / "sav"
    src = open_video_set(video_set)[0]
    shutil.copytree(video_set / "JPEGImages" / src.name, root / "JPEGImages_24fps" / src.name)
    for name in src.frame_names[::4]:  # SA-V annotates every 4th frame
        for obj_id, mask in src.annotation(name).items():
            write_mask_png(root / "Annotations_6fps" / src.name / f"{obj_id:03d}" / f"{name}.png", mask)
    video = open_video_set(root)[0]
    assert video.frame_names == src.frame_names
    assert video.annotation("00001") is None
    assert [video.is_annotated(name) for name in video.frame_names] == [i % 4 == 0 for i in range(len(src.frame_names))]
    first = video.annotation("00000")
    assert set(first) == set(src.annotation("00000"))
    for obj_id, mask in first.items():
        assert (mask == src.annotation("00000")[obj_id]).all()


@pytest.mark.parametrize("annotations, message", [
    ([1, 2], "invalid COCO annotation file"),
    ({"images": [{"id": 1, "height": 8, "width": 8}], "annotations": [
        {"id": 1, "image_id": 1, "bbox": [0, 0, 2, 2], "segmentation": [[0, 0, 2, 0, 2, 2]], "area": 2}]},
     "invalid COCO annotation for image 1"),
])
def test_malformed_coco_annotations_are_user_errors(tmp_path, annotations, message):
    import json

    (tmp_path / "images").mkdir()
    (tmp_path / "annotations.json").write_text(json.dumps(annotations))
    with pytest.raises(UserInputError, match=message):
        list(CocoImages.from_dir(tmp_path))


def test_frame_listing_errors(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        list_frames(tmp_path / "missing")
    with pytest.raises(UserInputError, match="no image frames"):
        list_frames(tmp_path)
    with pytest.raises(UserInputError, match="not a DAVIS"):
        open_video_set(tmp_path)
