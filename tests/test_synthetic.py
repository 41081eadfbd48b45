"""The synthetic dataset: deterministic, valid COCO, occlusion annotated as visible regions, crowds."""
import contextlib
import io
import json

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import make_synthetic_dataset
from tools.synthetic_shapes import SyntheticSpec, polygons_from_mask, synthesize_image, uncompressed_rle

ARGS = ["--num_train", "6", "--num_val", "40", "--image_size", "128", "--seed", "3"]


def generate(root, *extra):
    with contextlib.redirect_stdout(io.StringIO()):
        make_synthetic_dataset.main(["--output", str(root), *ARGS, *extra])


def load_coco(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def files_of(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "shapes"
    generate(root)
    return root


@pytest.fixture(scope="module")
def val(dataset):
    return load_coco(dataset / "annotations" / "instances_val.json")


def test_layout_matches_convert_coco(dataset):
    for split, count in (("train", 6), ("val", 40)):
        coco = json.loads((dataset / "annotations" / f"instances_{split}.json").read_text())
        assert len(coco["images"]) == count
        for image in coco["images"]:
            pixels = cv2.imread(str(dataset / split / image["file_name"]))
            assert pixels.shape == (image["height"], image["width"], 3)
    assert not list(dataset.parent.glob(".shapes.*"))


def test_same_arguments_give_identical_files(dataset, tmp_path):
    generate(tmp_path / "again")
    assert files_of(tmp_path / "again") == files_of(dataset)
    generate(tmp_path / "other_seed", "--seed", "4")
    assert files_of(tmp_path / "other_seed").keys() == files_of(dataset).keys()
    assert files_of(tmp_path / "other_seed") != files_of(dataset)


def test_image_does_not_depend_on_generation_order():
    spec = SyntheticSpec(image_size=128)
    late = synthesize_image(3, "val", 7, spec)
    for index in range(8):
        synthesize_image(3, "val", index, spec)
    assert np.array_equal(synthesize_image(3, "val", 7, spec).image, late.image)
    assert not np.array_equal(synthesize_image(3, "train", 7, spec).image, late.image)


def test_coco_is_valid(dataset, val):
    coco = json.loads((dataset / "annotations" / "instances_val.json").read_text())
    assert {"info", "licenses", "images", "annotations", "categories"} <= coco.keys()
    for kind in ("images", "annotations", "categories"):
        ids = [item["id"] for item in coco[kind]]
        assert len(set(ids)) == len(ids), kind
    sizes = {(image["height"], image["width"]) for image in coco["images"]}
    assert any(h > w for h, w in sizes) and any(h < w for h, w in sizes)
    category_ids = {c["id"] for c in coco["categories"]}
    for ann in val.dataset["annotations"]:
        assert ann["category_id"] in category_ids
        mask = val.annToMask(ann)
        assert mask.any()
        assert ann["area"] == mask.sum()
        bbox = mask_util.toBbox(mask_util.encode(np.asfortranarray(mask)))
        assert np.abs(bbox - np.array(ann["bbox"])).max() <= 1
        if ann["iscrowd"]:
            assert ann["segmentation"]["size"] == list(mask.shape)
            assert isinstance(ann["segmentation"]["counts"], list)
        else:
            assert all(len(polygon) >= 6 and len(polygon) % 2 == 0 for polygon in ann["segmentation"])


def test_category_ids_are_not_contiguous(val):
    ids = sorted(val.getCatIds())
    assert 3 <= len(ids) <= 5
    assert ids != list(range(1, len(ids) + 1))
    assert len({c["name"] for c in val.loadCats(ids)}) == len(ids)
    assert {ann["category_id"] for ann in val.dataset["annotations"]} == set(ids)


def test_ground_truth_as_detections_scores_ap_one(dataset):
    val = load_coco(dataset / "annotations" / "instances_val.json")  # COCOeval rewrites its annotations
    detections = []
    for ann in val.dataset["annotations"]:
        if ann["iscrowd"]:
            continue
        rle = mask_util.encode(np.asfortranarray(val.annToMask(ann)))
        rle["counts"] = rle["counts"].decode("ascii")
        detections.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                           "segmentation": rle, "bbox": ann["bbox"], "score": 1.0})
    with contextlib.redirect_stdout(io.StringIO()):
        results = val.loadRes(detections)
        for iou_type in ("bbox", "segm"):
            evaluator = COCOeval(val, results, iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            assert evaluator.stats[0] == pytest.approx(1.0), iou_type


def test_occluded_instances_are_annotated_by_their_visible_region(val):
    spec = SyntheticSpec(image_size=128)
    hidden = [f for i in range(40) for f in synthesize_image(3, "val", i, spec).hidden_fractions]
    assert len(hidden) == len(val.dataset["annotations"])
    assert max(hidden) > 0.2
    assert max(hidden) <= 1 - spec.min_visible_fraction
    for image_id in val.getImgIds():
        masks = [val.annToMask(a).astype(bool) for a in val.loadAnns(val.getAnnIds(imgIds=image_id, iscrowd=False))]
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                assert not (masks[i] & masks[j]).any()


def test_crowd_regions_are_present(val):
    crowds = val.loadAnns(val.getAnnIds(iscrowd=True))
    assert crowds
    assert all(isinstance(ann["segmentation"]["counts"], list) for ann in crowds)


def test_polygons_from_mask_follow_the_mask_and_drop_fragments():
    mask = np.zeros((40, 50), bool)
    mask[5:25, 10:30] = True
    mask[30:32, 40:41] = True
    polygons, dropped = polygons_from_mask(mask, min_fragment_area=6.0)
    assert dropped == 1 and len(polygons) == 1
    decoded = mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, 40, 50))).astype(bool)
    assert not (decoded & ~mask).any()
    assert decoded.sum() >= 0.9 * mask[5:25, 10:30].sum()


def test_uncompressed_rle_round_trips():
    rng = np.random.default_rng(0)
    for mask in (rng.uniform(size=(7, 9)) < 0.5, np.ones((3, 4), bool), np.zeros((3, 4), bool)):
        rle = uncompressed_rle(mask)
        assert sum(rle["counts"]) == mask.size
        assert np.array_equal(mask_util.decode(mask_util.frPyObjects(rle, *mask.shape)).astype(bool), mask)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    root = tmp_path / "shapes"
    generate(root)
    before = files_of(root)
    with pytest.raises(SystemExit, match="--overwrite"):
        generate(root, "--seed", "4")
    assert files_of(root) == before
    generate(root, "--seed", "4", "--overwrite")
    assert files_of(root) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"]
