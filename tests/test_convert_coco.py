"""COCO -> MindRecord: what is stored reads back exactly, bad input is skipped and counted, output is atomic."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import mindspore.dataset as ds
import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image
from pycocotools.coco import COCO

import convert_coco
from conftest import COCO_MINI, REPO_ROOT, requires_shared
from maskrcnn_pointrend.data import mindrecord_writer
from maskrcnn_pointrend.data.coco_json import AnnotationFileError
from maskrcnn_pointrend.data.mindrecord_reader import (IncompleteDatasetError, mindrecord_files, read_category_map,
                                                       read_image_index)
from maskrcnn_pointrend.data.mindrecord_schema import COMPLETE_MARKER, decode_instances
from maskrcnn_pointrend.data.mindrecord_writer import OutputExistsError, convert_coco as convert

pytestmark = requires_shared


def annotation_file(split):
    return COCO_MINI / "annotations" / f"instances_{split}.json"


def read_records(mindrecord_dir):
    data = ds.MindDataset(mindrecord_files(mindrecord_dir), shuffle=False)
    return list(data.create_dict_iterator(output_numpy=True, num_epochs=1))


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """coco_mini train and val converted with 2 workers (train in 2 shards)."""
    root = tmp_path_factory.mktemp("mindrecord")
    for split, shards in (("train2017", 2), ("val2017", 1)):
        convert(annotation_file(split), COCO_MINI / split, root / split, shards=shards, workers=2)
    return root


@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_coco_mini_reads_back_exactly(converted, split):
    coco = COCO(str(annotation_file(split)))
    records = read_records(converted / split)
    assert [int(r["image_id"]) for r in records] == [im["id"] for im in coco.dataset["images"]]
    categories = sorted(coco.dataset["categories"], key=lambda c: c["id"])
    assert read_category_map(converted / split) == categories
    contiguous = {c["id"]: i for i, c in enumerate(categories)}
    instances = 0
    for record in records:
        info = coco.imgs[int(record["image_id"])]
        image_path = COCO_MINI / split / info["file_name"]
        assert record["image"].tobytes() == image_path.read_bytes()
        assert (int(record["height"]), int(record["width"])) == (info["height"], info["width"])
        decoded = decode_instances(record)
        assert [int(i) for i in decoded.ann_ids] == [a["id"] for a in coco.imgToAnns[info["id"]]]
        for i, ann_id in enumerate(decoded.ann_ids):
            ann = coco.anns[int(ann_id)]
            x, y, w, h = np.float32(ann["bbox"])  # XYWH -> XYXY in float32, as detectron2's BoxMode.convert
            np.testing.assert_array_equal(decoded.boxes[i], np.float64([x, y, x + w, y + h]))
            assert decoded.classes[i] == contiguous[ann["category_id"]]
            assert decoded.iscrowd[i] == ann["iscrowd"]
            segmentation = decoded.segmentations[i]
            if isinstance(segmentation, bytes):
                rle = {"size": [info["height"], info["width"]], "counts": segmentation}
            else:
                rle = mask_util.merge(mask_util.frPyObjects([p.tolist() for p in segmentation],
                                                            info["height"], info["width"]))
            np.testing.assert_array_equal(mask_util.decode(rle), coco.annToMask(ann))
            instances += 1
    assert instances == len(coco.dataset["annotations"])
    summary = json.loads((converted / split / "summary.json").read_text())  # what users read
    assert summary["images"]["converted"] == len(coco.dataset["images"])
    assert summary["annotations"]["instances"] == instances
    assert summary["annotations"]["crowd"] == sum(a["iscrowd"] for a in coco.dataset["annotations"])
    index = read_image_index(converted / split)
    assert list(index["image_id"]) == [im["id"] for im in coco.dataset["images"]]
    assert list(index["num_crowd"]) == [sum(a["iscrowd"] for a in coco.imgToAnns[i]) for i in index["image_id"]]


@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_output_is_at_most_1_1x_the_jpeg_bytes(converted, split):
    jpeg_bytes = dir_bytes(COCO_MINI / split)
    assert dir_bytes(converted / split) <= 1.1 * jpeg_bytes


def test_shards_split_the_images_by_bytes(converted):
    files = mindrecord_files(converted / "train2017")
    assert [os.path.basename(f) for f in files] == ["shard_000.mindrecord", "shard_001.mindrecord"]
    counts = [ds.MindDataset([f], columns_list=["image_id"]).get_dataset_size() for f in files]
    assert sum(counts) == 80 and min(counts) > 0
    largest_image = max(os.path.getsize(p) for p in (COCO_MINI / "train2017").iterdir())
    sizes = [os.path.getsize(f) for f in files]
    assert abs(sizes[0] - sizes[1]) <= 2 * largest_image


def test_every_converted_file_has_the_permissions_of_the_umask(converted):
    umask = os.umask(0)
    os.umask(umask)
    modes = {name: stat.S_IMODE(os.stat(converted / "train2017" / name).st_mode)
             for name in os.listdir(converted / "train2017")}
    assert "shard_001.mindrecord.db" in modes and set(modes.values()) == {0o666 & ~umask}  # MindRecord's are 0600


def uncompressed_rle(mask):
    """(H, W) 0/1 -> COCO's uncompressed RLE (column-major run lengths starting with zeros)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [len(flat)]]))
    counts = ([0] if flat[0] else []) + runs.tolist()
    return {"size": list(mask.shape), "counts": counts}


def broken_dataset(root):
    """A COCO-format dataset with one of each problem the converter must skip and count."""
    coco = json.loads(annotation_file("train2017").read_text())
    images = {im["id"]: im for im in coco["images"]}
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    ids = [im["id"] for im in coco["images"] if not any(a["iscrowd"] for a in by_image[im["id"]])][:4]
    good, truncated_src, mismatch_src, spare = (images[i] for i in ids)
    image_dir = root / "images"
    image_dir.mkdir()
    src = COCO_MINI / "train2017"
    shutil.copy(src / good["file_name"], image_dir / "good.jpg")
    (image_dir / "corrupt.jpg").write_bytes(b"this is not a jpeg" * 100)
    data = (src / truncated_src["file_name"]).read_bytes()
    (image_dir / "truncated.jpg").write_bytes(data[:len(data) // 2])
    shutil.copy(src / mismatch_src["file_name"], image_dir / "mismatch.jpg")
    shutil.copy(src / spare["file_name"], image_dir / "empty.jpg")
    shutil.copy(src / spare["file_name"], image_dir / "crowd_only.jpg")
    shutil.copy(src / spare["file_name"], image_dir / "shared_id_a.jpg")
    shutil.copy(src / spare["file_name"], image_dir / "shared_id_b.jpg")
    Image.fromarray(np.zeros((good["height"], good["width"]), np.float32)).save(image_dir / "float.tiff")

    def image(image_id, name, like, height_delta=0):
        return {"id": image_id, "file_name": name, "height": like["height"] + height_delta, "width": like["width"]}

    new_images = [image(1, "good.jpg", good), image(2, "corrupt.jpg", good), image(3, "truncated.jpg", truncated_src),
                  image(4, "missing.jpg", good), image(5, "mismatch.jpg", mismatch_src, height_delta=1),
                  image(6, "empty.jpg", spare), image(7, "crowd_only.jpg", spare), image(8, "shared_id_a.jpg", spare),
                  image(8, "shared_id_b.jpg", spare), image(9, "float.tiff", good)]
    good_anns = [dict(a, image_id=1) for a in by_image[good["id"]]]
    mismatch_anns = [dict(a, image_id=5, id=a["id"] + 10 ** 9) for a in by_image[mismatch_src["id"]]]
    triangle = [10.0, 10.0, 60.0, 10.0, 30.0, 50.0]
    base = {"image_id": 1, "category_id": coco["categories"][0]["id"], "iscrowd": 0, "area": 1.0,
            "bbox": [10.0, 10.0, 50.0, 40.0], "segmentation": [triangle]}
    crowd_mask = np.zeros((spare["height"], spare["width"]), np.uint8)
    crowd_mask[20:60, 30:90] = 1
    crowd_rle = uncompressed_rle(crowd_mask)
    bad_size_rle = uncompressed_rle(np.pad(crowd_mask, ((0, 1), (0, 0))))
    crafted = [
        dict(base, id=-1, segmentation=[[10.0, 10.0, 60.0, 10.0]]),                   # polygon_lt_3_points
        dict(base, id=-2, bbox=[10.0, 10.0, 0.0, 40.0]),                              # zero_area_box
        dict(base, id=-3, bbox=[float(good["width"]), 10.0, 5.0, 5.0]),                # zero_area_box (outside)
        dict(base, id=-4, category_id=987654),                                        # unknown_category
        dict(base, id=good_anns[0]["id"]),                                            # duplicate_annotation_id
        dict(base, id=-5, image_id=424242),                                           # unknown_image
        dict(base, id=-6, segmentation=[triangle, [1.0, 1.0, 2.0, 2.0]]),             # kept, one part dropped
        dict(base, id=-7, iscrowd=1, segmentation=bad_size_rle),                      # rle_size_mismatch
        dict(base, id=-8, image_id=7, iscrowd=1, bbox=[30.0, 20.0, 60.0, 40.0], segmentation=crowd_rle),  # kept
        dict(base, id=-9, image_id=8),                                                # on_skipped_image
    ]
    coco.update(images=new_images, annotations=good_anns + mismatch_anns + crafted)
    ann_file = root / "broken.json"
    ann_file.write_text(json.dumps(coco))
    return ann_file, image_dir, {"good": good_anns, "mismatch": mismatch_anns, "crowd_mask": crowd_mask}


def test_bad_input_is_skipped_and_counted_by_reason(tmp_path):
    ann_file, image_dir, parts = broken_dataset(tmp_path)
    summary = convert(ann_file, image_dir, tmp_path / "out", workers=2)
    assert summary["images"] == {
        "in_file": 10, "converted": 3, "without_annotations": 1, "without_non_crowd_instances": 2,
        "skipped": {"missing_file": 1, "unreadable_image": 2, "unsupported_pixel_format": 1, "size_mismatch": 1,
                    "duplicate_image_id": 2}}
    assert summary["annotations"]["skipped"] == {
        "unknown_image": 1, "duplicate_annotation_id": 1, "unknown_category": 1, "zero_area_box": 2,
        "polygon_lt_3_points": 1, "rle_size_mismatch": 1, "on_skipped_image": len(parts["mismatch"]) + 1}
    assert summary["annotations"]["polygon_parts_dropped"] == 1
    assert summary["annotations"]["instances"] == len(parts["good"]) + 2
    assert summary["annotations"]["crowd"] == 1
    assert sorted(summary["examples"]["unreadable_image"]) == ["corrupt.jpg", "truncated.jpg"]
    assert summary["examples"]["duplicate_image_id"] == ["shared_id_a.jpg", "shared_id_b.jpg"]
    assert summary["examples"]["zero_area_box"] == [-2, -3]
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == json.loads(json.dumps(summary))

    records = {int(r["image_id"]): r for r in read_records(tmp_path / "out")}
    assert sorted(records) == [1, 6, 7]
    good = decode_instances(records[1])
    assert list(good.ann_ids) == [a["id"] for a in parts["good"]] + [-6]
    assert len(good.segmentations[-1]) == 1  # the 2-point part was dropped, the triangle kept
    assert int(records[6]["num_instances"]) == 0
    crowd = decode_instances(records[7])
    height, width = parts["crowd_mask"].shape
    np.testing.assert_array_equal(
        mask_util.decode({"size": [height, width], "counts": crowd.segmentations[0]}), parts["crowd_mask"])


def test_malformed_annotation_file_names_file_and_key(tmp_path):
    not_json = tmp_path / "not_json.json"
    not_json.write_text("{'images': [")
    with pytest.raises(AnnotationFileError, match=f"{not_json} is not valid JSON"):
        convert(not_json, COCO_MINI / "val2017", tmp_path / "out")
    coco = json.loads(annotation_file("val2017").read_text())
    del coco["annotations"][3]["bbox"]
    missing_key = tmp_path / "missing_key.json"
    missing_key.write_text(json.dumps(coco))
    with pytest.raises(AnnotationFileError, match=rf"{missing_key}: annotations\[3\] has no key 'bbox'"):
        convert(missing_key, COCO_MINI / "val2017", tmp_path / "out")
    del coco["categories"]
    missing_key.write_text(json.dumps(coco))
    with pytest.raises(AnnotationFileError, match=f"{missing_key}: the top level has no key 'categories'"):
        convert(missing_key, COCO_MINI / "val2017", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def small_dataset(root, num_images=3):
    coco = json.loads(annotation_file("val2017").read_text())
    coco["images"] = coco["images"][:num_images]
    kept = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
    path = root / "small.json"
    path.write_text(json.dumps(coco))
    return path


def test_failed_conversion_leaves_nothing_and_keeps_the_old_output(tmp_path, monkeypatch):
    ann_file = small_dataset(tmp_path)
    out = tmp_path / "out"
    calls = []

    def failing_encode(entry, image_bytes):
        calls.append(entry.image_id)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return encode_record(entry, image_bytes)

    encode_record = mindrecord_writer.encode_record
    monkeypatch.setattr(mindrecord_writer, "encode_record", failing_encode)
    with pytest.raises(RuntimeError, match="disk full"):
        convert(ann_file, COCO_MINI / "val2017", out)
    assert os.listdir(tmp_path) == ["small.json"]

    monkeypatch.setattr(mindrecord_writer, "encode_record", encode_record)
    convert(ann_file, COCO_MINI / "val2017", out)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    monkeypatch.setattr(mindrecord_writer, "encode_record", failing_encode)
    calls.clear()
    with pytest.raises(RuntimeError, match="disk full"):
        convert(ann_file, COCO_MINI / "val2017", out, overwrite=True)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["out", "small.json"]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_killed_conversion_leaves_no_complete_looking_output(tmp_path, stop):
    # enough records (each coco_mini image listed 4 times) that writing takes a while to interrupt
    coco = json.loads(annotation_file("train2017").read_text())
    coco["images"] = [dict(im, id=im["id"] * 10 + k) for k in range(4) for im in coco["images"]]
    coco["annotations"] = []
    ann_file = tmp_path / "many.json"
    ann_file.write_text(json.dumps(coco))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "convert_coco.py"), "--coco_root", str(COCO_MINI),
                                "--split", "train2017", "--ann_file", str(ann_file), "--output", str(out),
                                "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    temporary = tmp_path / f".out.incomplete-{process.pid}"
    deadline = time.monotonic() + 60
    while not (temporary / "shard_000.mindrecord").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the conversion ended before writing"
        time.sleep(0.002)
    process.send_signal(stop)
    stderr = process.communicate()[1]
    assert not out.exists()
    if stop == signal.SIGTERM:  # what schedulers send: the conversion removes its partial output itself
        assert process.returncode == 128 + signal.SIGTERM and not temporary.exists() and "Traceback" not in stderr
        return
    assert not (temporary / COMPLETE_MARKER).exists()
    with pytest.raises(IncompleteDatasetError, match="does not exist"):
        mindrecord_files(out)
    # the next conversion clears what the killed one left, even one refused because the output is taken
    out.mkdir()
    (out / "unrelated").write_text("")
    with pytest.raises(OutputExistsError, match="exists and is not a complete conversion"):
        convert(small_dataset(tmp_path), COCO_MINI / "val2017", out)
    assert not temporary.exists()


def test_readers_refuse_a_directory_without_completion_marker(converted, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(converted / "val2017", partial)
    os.remove(partial / COMPLETE_MARKER)
    for reader in (mindrecord_files, read_category_map, read_image_index):
        with pytest.raises(IncompleteDatasetError, match=f"{partial} has no {COMPLETE_MARKER} marker"):
            reader(partial)


def test_cli_refuses_complete_output_without_overwrite(tmp_path, capsys, caplog):
    ann_file = small_dataset(tmp_path, num_images=2)
    args = ["--coco_root", str(COCO_MINI), "--split", "val2017", "--ann_file", str(ann_file),
            "--output", str(tmp_path / "out"), "--workers", "1"]
    assert convert_coco.main(args) == 0
    assert "converted      2" in capsys.readouterr().out
    marker = (tmp_path / "out" / COMPLETE_MARKER).read_text()
    assert convert_coco.main(args) == 1
    assert "already holds a complete conversion; pass --overwrite to replace it" in caplog.text
    with pytest.raises(OutputExistsError, match="already holds a complete conversion"):
        convert(ann_file, COCO_MINI / "val2017", tmp_path / "out")
    assert (tmp_path / "out" / COMPLETE_MARKER).read_text() == marker
    assert convert_coco.main(args + ["--overwrite"]) == 0
    assert json.loads((tmp_path / "out" / COMPLETE_MARKER).read_text())["images"] == 2
