import json

from mixqsam2.cli.main import main


def test_eval_images_writes_miou_and_the_box_baseline(image_set, tmp_path):
    out = tmp_path / "images.json"
    assert main(["eval", "images", "--model", "pico", "--data", str(image_set), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert 0.0 <= result["miou"] <= 1.0 and 0.3 < result["box_fill_miou"] < 1.0
    assert result["instances"] > 0 and len(result["per_image"]) == 4
    assert result["box_zoom"] is None


def test_eval_images_with_box_zoom_segments_small_boxes_on_zoomed_views(image_set, tmp_path):
    outs = {zoom: tmp_path / f"images{zoom}.json" for zoom in (None, "0.3")}
    for zoom, out in outs.items():
        argv = ["eval", "images", "--model", "pico", "--data", str(image_set), "--out", str(out)]
        assert main(argv + (["--box-zoom", zoom] if zoom else [])) == 0
    plain, zoomed = (json.loads(out.read_text()) for out in outs.values())
    assert zoomed["box_zoom"] == 0.3 and zoomed["instances"] == plain["instances"]
    small = [k for k, r in plain["per_instance"].items() if r["area"] < 0.01 * 240 * 320]
    assert small and any(zoomed["per_instance"][k]["iou"] != plain["per_instance"][k]["iou"] for k in small)


def test_eval_videos_writes_davis_scores_per_video(video_set, tmp_path):
    out = tmp_path / "videos.json"
    assert main(["eval", "videos", "--model", "pico", "--data", str(video_set), "--capacity", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["per_video"]) == {"vid0000", "vid0001"}
    assert result["objects"] == 4 and result["capacity"] == 2 and result["memory"] == "fifo"
    assert result["JF"] == (result["J"] + result["F"]) / 2
    for video in result["per_video"].values():
        assert 0.0 <= video["J"] <= 1.0 and 0.0 <= video["F"] <= 1.0


def test_eval_videos_with_track_zoom_follows_small_objects(video_set, tmp_path):
    outs = {zoom: tmp_path / f"videos{zoom}.json" for zoom in (None, "0.5")}
    for zoom, out in outs.items():
        argv = ["eval", "videos", "--model", "pico", "--data", str(video_set), "--out", str(out)]
        assert main(argv + (["--track-zoom", zoom] if zoom else [])) == 0
    plain, followed = (json.loads(out.read_text()) for out in outs.values())
    assert plain["track_zoom"] is None and followed["track_zoom"] == 0.5
    assert followed["objects"] == plain["objects"] and followed["JF"] != plain["JF"]


def test_eval_videos_with_sis_reports_bank_bytes_and_attention_time(video_set, tmp_path):
    out = tmp_path / "sis.json"
    argv = ["eval", "videos", "--model", "pico", "--data", str(video_set), "--memory", "sis", "--capacity", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["memory"] == "sis" and result["capacity"] == 3 and result["objects"] == 4
    assert result["memory_bank_bytes"] > 0 and result["latency_ms"]["memory_attention"] > 0
    assert 0.0 <= result["JF"] <= 1.0


def test_an_out_that_is_a_folder_is_refused_before_evaluating(image_set, tmp_path, capsys):
    code = main(["eval", "images", "--model", "pico", "--data", str(image_set), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is a folder" in err[0]


def test_a_bad_out_creates_no_folders(tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "r.json"
    assert main(["eval", "videos", "--model", "pico", "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "data folder not found" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_eval_on_a_missing_folder_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "videos", "--model", "pico", "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data folder not found" in err[0] and not out.exists()
