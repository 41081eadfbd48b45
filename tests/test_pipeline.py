"""Input pipeline: detectron2-exact decoding and resizing, masks and boxes that follow resize and flip,
static padded training batches within the memory bound, and the test pipeline."""
import io
import json
import logging
import math
import re

import cv2
import mindspore.dataset as ds
import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image
from pycocotools.coco import COCO

from conftest import COCO_MINI, PARITY, requires_shared
from maskrcnn_pointrend.config import load_config
from maskrcnn_pointrend.data.mindrecord_reader import mindrecord_files
from maskrcnn_pointrend.data.mindrecord_schema import RecordInstances, decode_instances
from maskrcnn_pointrend.data.mindrecord_writer import convert_coco
from maskrcnn_pointrend.data.dataset import (TRAIN_COLUMNS, TrainTransform, create_test_dataset, create_train_dataset,
                                             record_canvases, training_stream)
from maskrcnn_pointrend.data.gt_masks import FRAME_MARGIN, GRID_SCALE
from maskrcnn_pointrend.data.image_check import inspect_image
from maskrcnn_pointrend.data.transforms import (ImageReadError, InferenceInput, orientation_canvases, read_image_bgr,
                                                resize_shortest_edge_shape)

MASK_MEMORY_BOUND = 16 * 2 ** 20  # bytes per training image the pipeline may produce


@pytest.fixture(scope="module")
def cfg():
    return load_config([])


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for split in ("train2017", "val2017"):
        convert_coco(COCO_MINI / "annotations" / f"instances_{split}.json", COCO_MINI / split, root / split, workers=2)
    return root


def records(mindrecord_dir, count):
    data = ds.MindDataset(mindrecord_files(mindrecord_dir), shuffle=False)
    rows = data.create_dict_iterator(output_numpy=True, num_epochs=1)
    return [row for _, row in zip(range(count), rows)]


@pytest.mark.parametrize("size, short_edge, expected", [
    ((480, 640), 800, (800, 1067)),
    ((427, 640), 800, (800, 1199)),
    ((640, 640), 800, (800, 800)),
    ((1000, 100), 800, (1333, 133)),   # the longer side hits max_size
    ((500, 2000), 640, (333, 1333)),
])
def test_resize_shape_follows_detectron2(size, short_edge, expected):
    assert resize_shortest_edge_shape(*size, short_edge, 1333) == expected


@requires_shared
def test_inference_input_without_canvases_is_detectron2s_input_for_the_parity_image():
    reference = np.load(PARITY / "ref_seed0_coco_397133_800.npz")
    image = read_image_bgr(PARITY / "coco_397133_800.png")
    np.testing.assert_array_equal(image, cv2.imread(str(PARITY / "coco_397133_800.png")))  # BGR, as cv2
    padded, image_size = InferenceInput(800, 1333, 32, [])(image)
    assert padded.dtype == np.uint8 and padded.shape == tuple(reference["input_tensor_shape"][1:])
    assert image_size == tuple(reference["image_size"])
    np.testing.assert_array_equal(padded[:, :800, :1199], image.transpose(2, 0, 1))
    assert not padded[:, :, 1199:].any()


def test_inference_input_pads_to_the_orientations_canvas():
    inference_input = InferenceInput(800, 1333, 32, [[800, 1344], [1344, 800]])
    assert inference_input.shape(480, 640) == (800, 1344) and inference_input.shape(640, 480) == (1344, 800)
    assert inference_input.shape(500, 500) == (1344, 800)  # a square image is not landscape
    padded, image_size = inference_input(np.full((480, 640, 3), 9, np.uint8))
    assert padded.shape == (3, 800, 1344) and image_size == (800, 1067)
    assert (padded[:, :, :1067] == 9).all() and not padded[:, :, 1067:].any()
    with pytest.raises(ValueError, match="cannot hold"):
        InferenceInput(800, 1333, 32, [[800, 1216], [1216, 800]])


def test_read_image_bgr_applies_exif_orientation_and_names_unreadable_files(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :15] = (255, 0, 0)   # left half red
    rgb[:, 15:] = (0, 0, 255)   # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6            # displayed rotated 90 degrees clockwise: the left half goes to the top
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=100, exif=exif)
    bgr = read_image_bgr(buffer.getvalue())
    assert bgr.shape == (30, 20, 3) and bgr.dtype == np.uint8
    assert (bgr[:12, :, 2] > 200).all() and (bgr[:12, :, 0] < 60).all()    # top: red, in channel 2
    assert (bgr[-12:, :, 0] > 200).all() and (bgr[-12:, :, 2] < 60).all()  # bottom: blue, in channel 0
    with pytest.raises(ImageReadError, match="cannot read image <image bytes>"):
        read_image_bgr(b"not an image")
    with pytest.raises(ImageReadError, match=f"cannot read image {tmp_path / 'missing.jpg'}"):
        read_image_bgr(tmp_path / "missing.jpg")


def test_16_bit_images_keep_their_high_byte_and_unranged_pixels_are_refused(tmp_path):
    gray16 = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    image = read_image_bgr(tmp_path / "gray16.png")
    np.testing.assert_array_equal(image, np.repeat((gray16 >> 8).astype(np.uint8)[:, :, None], 3, axis=2))
    assert inspect_image(tmp_path / "gray16.png", 64, 64).problem is None
    for name, pixels, kind in (
            ("float.tiff", np.ones((4, 4), np.float32), "32-bit floating-point pixels (Pillow mode F)"),
            ("int32.tiff", np.full((4, 4), 70000, np.int32), "32-bit integer pixels (Pillow mode I)")):
        Image.fromarray(pixels).save(tmp_path / name)
        with pytest.raises(ImageReadError, match=rf"cannot read image {tmp_path / name}: {re.escape(kind)} have no "
                                                 "defined range"):
            read_image_bgr(tmp_path / name)
        check = inspect_image(tmp_path / name, 4, 4)
        assert check.problem == "unsupported_pixel_format" and kind in check.detail


def transformed_polygons(polygons, sx, sy, flip_width):
    """Polygons in original pixels -> (P, 2) point arrays in the resized (and flipped) image."""
    out = []
    for p in polygons:
        points = p.reshape(-1, 2) * [sx, sy]
        if flip_width is not None:
            points[:, 0] = flip_width - points[:, 0]
        out.append(points)
    return out


def bilinear_at(bitmask, xs, ys):
    """Bilinear samples of an (H, W) bitmask (pixel (i, j) centred at (j + 0.5, i + 0.5), zero outside) at image
    points xs (M,) x ys (M,) of a grid -> (M, M), one point at a time as grid_sample computes it."""
    height, width = bitmask.shape
    out = np.zeros((len(ys), len(xs)))
    for a, y in enumerate(ys):
        for b, x in enumerate(xs):
            x0, y0 = math.floor(x - 0.5), math.floor(y - 0.5)
            fx, fy = x - 0.5 - x0, y - 0.5 - y0
            for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)),
                                   (1, 1, fy * fx)):
                if 0 <= y0 + dy < height and 0 <= x0 + dx < width:
                    out[a, b] += weight * bitmask[y0 + dy, x0 + dx]
    return out


def expected_grid(bitmask, frame, grid):
    """What gt_masks holds for a bitmask of the transformed image: its bilinear interpolant at the cell centres
    of `frame`, x 255."""
    centres = (np.arange(grid) + 0.5) / grid
    xs, ys = frame[0] + centres * (frame[2] - frame[0]), frame[1] + centres * (frame[3] - frame[1])
    return bilinear_at(bitmask, xs, ys) * GRID_SCALE


@requires_shared
@pytest.mark.parametrize("short_edge, flip", [(640, False), (800, True)])
def test_masks_and_boxes_follow_resize_and_flip(mini, cfg, short_edge, flip):
    """Boxes, bitmasks and grids as detectron2's DatasetMapper makes them: polygons transformed, then
    rasterized by pycocotools at the training size (checked on every 8th grid, at 64 cells)."""
    transform = TrainTransform.from_config(load_config(["--input.mask_grid=64"]))
    checked = 0
    for record in records(mini / "train2017", 12):
        image = read_image_bgr(record["image"].tobytes())
        instances = decode_instances(record)
        out = dict(zip(TRAIN_COLUMNS, transform.transform(image, instances, short_edge, flip)))
        height, width = image.shape[:2]
        new_h, new_w = resize_shortest_edge_shape(height, width, short_edge, cfg.input.max_size_train)
        assert tuple(out["image_size"]) == (new_h, new_w)
        expected = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
        expected = expected[:, ::-1] if flip else expected
        np.testing.assert_array_equal(out["image"][:, :new_h, :new_w], expected.transpose(2, 0, 1))
        assert not out["image"][:, new_h:].any() and not out["image"][:, :, new_w:].any()
        bitmasks = [mask_util.decode(mask_util.merge(mask_util.frPyObjects(
            [p.reshape(-1).tolist() for p in transformed_polygons(instances.segmentations[i], new_w / width,
                                                                   new_h / height, new_w if flip else None)],
            new_h, new_w))) for i in np.flatnonzero(instances.iscrowd == 0)]
        kept = [(i, m) for i, m in zip(np.flatnonzero(instances.iscrowd == 0), bitmasks) if m.any()]
        assert out["gt_valid"].sum() == len(kept)
        for slot, (i, bitmask) in enumerate(kept):
            points = np.concatenate(transformed_polygons(instances.segmentations[i], new_w / width, new_h / height,
                                                         new_w if flip else None))
            box = out["gt_boxes"][slot]
            # COCO boxes are the polygons' extents: the box must follow them through resize and flip
            np.testing.assert_allclose(box, np.r_[points.min(0), points.max(0)].clip(0, [new_w, new_h] * 2),
                                       atol=1e-3)
            frame = out["gt_mask_frames"][slot]
            np.testing.assert_allclose(frame, box + [-FRAME_MARGIN, -FRAME_MARGIN, FRAME_MARGIN, FRAME_MARGIN])
            if slot % 8 == 0:
                checked += 1
                grid = out["gt_masks"][slot].astype(np.float64)
                assert np.abs(grid - expected_grid(bitmask, frame, 64)).max() <= 0.51
    assert checked >= 20


@requires_shared
def test_rle_masks_follow_detectron2s_nearest_neighbour_resize_and_flip(cfg):
    """An RLE instance's bitmask is its mask resized by Pillow's nearest neighbour, then flipped."""
    coco = COCO(str(COCO_MINI / "annotations" / "instances_val2017.json"))
    ann = next(a for a in coco.anns.values() if isinstance(a["segmentation"], dict))
    info = coco.imgs[ann["image_id"]]
    rle = mask_util.frPyObjects(ann["segmentation"], info["height"], info["width"])
    x, y, w, h = ann["bbox"]
    instances = RecordInstances(np.array([[x, y, x + w, y + h]]), np.array([3], np.int32), np.array([0], np.int32),
                                np.array([ann["id"]]), [rle["counts"]])
    transform = TrainTransform.from_config(load_config(["--input.mask_grid=32"]))
    image = np.zeros((info["height"], info["width"], 3), np.uint8)
    out = dict(zip(TRAIN_COLUMNS, transform.transform(image, instances, 640, True)))
    new_h, new_w = out["image_size"]
    mask = np.asarray(Image.fromarray(coco.annToMask(ann)).resize((new_w, new_h), Image.Resampling.NEAREST))[:, ::-1]
    assert out["gt_valid"][0] == 1 and out["gt_classes"][0] == 3
    grid = out["gt_masks"][0].astype(np.float64)
    assert np.abs(grid - expected_grid(mask, out["gt_mask_frames"][0], 32)).max() <= 0.51


def test_instances_whose_box_or_bitmask_is_empty_at_the_training_size_are_left_out(cfg):
    """detectron2's filter_empty_instances: a polygon too thin to cover a pixel centre, and a box outside the
    image, leave no training target; the instance between them keeps its slot order."""
    image = np.zeros((100, 200, 3), np.uint8)
    square = np.array([20.0, 20, 60, 20, 60, 60, 20, 60])
    sliver = np.array([100.1, 10, 100.3, 10, 100.3, 90, 100.1, 90])  # 0.2 px wide: no pixel centre inside
    outside = np.array([210.0, 10, 220, 10, 220, 20])
    instances = RecordInstances(np.array([[100.1, 10, 100.3, 90], [20, 20, 60, 60], [210, 10, 220, 20]]),
                                np.array([1, 2, 3], np.int32), np.zeros(3, np.int32), np.arange(3),
                                [[sliver], [square], [outside]])
    out = dict(zip(TRAIN_COLUMNS, TrainTransform.from_config(cfg).transform(image, instances, 100, False)))
    assert out["gt_valid"].sum() == 1 and out["gt_classes"][0] == 2
    np.testing.assert_array_equal(out["gt_boxes"][0], [20, 20, 60, 60])


def test_without_canvases_training_images_are_padded_to_a_multiple_of_32():
    cfg = load_config(["--input.train_canvases=[]", "--input.min_size_train=[100]"])
    image = np.full((100, 150, 3), 7, np.uint8)
    instances = RecordInstances(np.array([[20.0, 20, 60, 60]]), np.array([1], np.int32), np.zeros(1, np.int32),
                                np.arange(1), [[np.array([20.0, 20, 60, 20, 60, 60, 20, 60])]])
    out = dict(zip(TRAIN_COLUMNS, TrainTransform.from_config(cfg).transform(image, instances, 100, False)))
    assert out["image"].shape == (3, 128, 160) and tuple(out["image_size"]) == (100, 150)
    assert (out["image"][:, :100, :150] == 7).all() and not out["image"][:, 100:].any()


@requires_shared
def test_crowd_instances_are_left_out_and_the_largest_instances_kept(mini, cfg):
    rows = records(mini / "train2017", 80)
    with_crowd = next(r for r in rows if decode_instances(r).iscrowd.any())
    instances = decode_instances(with_crowd)
    image = read_image_bgr(with_crowd["image"].tobytes())
    out = dict(zip(TRAIN_COLUMNS, TrainTransform.from_config(cfg).transform(image, instances, 800, False)))
    noncrowd = np.flatnonzero(instances.iscrowd == 0)
    n = len(noncrowd)
    np.testing.assert_array_equal(out["gt_valid"], np.r_[np.ones(n), np.zeros(cfg.input.max_instances - n)])
    np.testing.assert_array_equal(out["gt_classes"][:n], instances.classes[noncrowd])
    assert not out["gt_boxes"][n:].any() and not out["gt_classes"][n:].any() and not out["gt_masks"][n:].any()

    few = load_config(["--input.max_instances=3"])
    crowded = next(r for r in rows if (decode_instances(r).iscrowd == 0).sum() > 3)
    instances = decode_instances(crowded)
    image = read_image_bgr(crowded["image"].tobytes())
    out = dict(zip(TRAIN_COLUMNS, TrainTransform.from_config(few).transform(image, instances, 800, False)))
    boxes = instances.boxes[instances.iscrowd == 0]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    largest = boxes[np.sort(np.argsort(-areas)[:3])]
    sx = out["image_size"][1] / image.shape[1]
    np.testing.assert_allclose(out["gt_boxes"], largest * sx, rtol=1e-3)
    assert out["gt_masks"].shape == (3, few.input.mask_grid, few.input.mask_grid)


def test_canvases_must_hold_every_resized_image():
    assert orientation_canvases([[800, 1344], [1344, 800]], 800, 1333) == ((800, 1344), (1344, 800))
    with pytest.raises(ValueError, match="cannot hold"):
        orientation_canvases([[800, 1312], [1312, 800]], 800, 1333)
    with pytest.raises(ValueError, match="cannot hold"):
        orientation_canvases([[800, 1344]], 800, 1333)  # one canvas must hold both orientations
    assert orientation_canvases([[256, 256]], 256, 256) == ((256, 256), (256, 256))
    with pytest.raises(ValueError, match="one landscape"):
        orientation_canvases([[800, 1344], [800, 1344]], 800, 1333)


@requires_shared
def test_train_dataset_yields_static_batches_grouped_by_canvas(mini, cfg):
    data = create_train_dataset(mini / "train2017", cfg, batch_size=2, num_batches=45, num_workers=2)
    assert data.get_col_names() == list(TRAIN_COLUMNS)
    K, M = cfg.input.max_instances, cfg.input.mask_grid
    canvases_seen = set()
    count = 0
    for batch in data.create_dict_iterator(output_numpy=True, num_epochs=1):
        count += 1
        image, size, valid = batch["image"], batch["image_size"], batch["gt_valid"]
        canvas = tuple(image.shape[2:])
        assert canvas in {(800, 1344), (1344, 800)} and image.dtype == np.uint8 and image.shape[:2] == (2, 3)
        canvases_seen.add(canvas)
        assert batch["gt_boxes"].shape == (2, K, 4) and batch["gt_boxes"].dtype == np.float32
        assert batch["gt_classes"].shape == (2, K) and batch["gt_classes"].dtype == np.int32
        assert valid.shape == (2, K) and valid.dtype == np.float32
        assert batch["gt_masks"].shape == (2, K, M, M) and batch["gt_masks"].dtype == np.uint8
        assert size.dtype == np.int32
        assert sum(v.nbytes for v in batch.values()) / 2 <= MASK_MEMORY_BOUND
        for k in range(2):
            h, w = size[k]
            assert (h > w) == (canvas[0] > canvas[1]) or h == w
            assert min(h, w) in cfg.input.min_size_train or max(h, w) == cfg.input.max_size_train
            assert not image[k, :, h:].any() and not image[k, :, :, w:].any()
            n = int(valid[k].sum())
            assert n >= 1 and valid[k, :n].all()
            boxes = batch["gt_boxes"][k, :n]
            assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes >= 0).all()
            assert (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
            assert batch["gt_masks"][k, :n].reshape(n, -1).any(1).all()
            np.testing.assert_allclose(batch["gt_mask_frames"][k, :n], boxes + [-FRAME_MARGIN, -FRAME_MARGIN,
                                                                               FRAME_MARGIN, FRAME_MARGIN])
            assert not batch["gt_masks"][k, n:].any() and not batch["gt_boxes"][k, n:].any()
            assert (batch["gt_classes"][k, :n] < cfg.model.num_classes).all()
    assert canvases_seen == {(800, 1344), (1344, 800)}
    assert count == 45  # more than one pass over the 80 images


@requires_shared
def test_without_canvases_a_batch_is_padded_to_its_largest_image_as_detectron2_pads(mini):
    cfg = load_config(["--input.train_canvases=[]", "--input.min_size_train=[200,240]", "--input.max_size_train=400"])
    data = create_train_dataset(mini / "train2017", cfg, batch_size=2, num_batches=4, num_workers=2)
    for batch in data.create_dict_iterator(output_numpy=True, num_epochs=1):
        sizes = batch["image_size"]
        padded = [-(-int(v) // 32) * 32 for v in sizes.max(0)]
        assert list(batch["image"].shape[2:]) == padded
        for image, (h, w) in zip(batch["image"], sizes):
            assert image[:, :h, :w].any() and not image[:, h:].any() and not image[:, :, w:].any()


def first_batches(mindrecord_dir, cfg, seed, count):
    data = create_train_dataset(mindrecord_dir, cfg, batch_size=2, num_batches=count, seed=seed, num_workers=2)
    return list(data.create_tuple_iterator(output_numpy=True, num_epochs=1))


@requires_shared
def test_train_dataset_is_reproducible_for_a_seed(mini, cfg):
    first = first_batches(mini / "train2017", cfg, 3, 3)
    again = first_batches(mini / "train2017", cfg, 3, 3)
    other = first_batches(mini / "train2017", cfg, 4, 3)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(a[1], b[1]) or a[0].shape != b[0].shape for a, b in zip(first, other))


def synthetic_index(canvases, noncrowd):
    """An image_index of records with these canvases (0 landscape, 1 portrait) and non-crowd instance counts."""
    canvases, noncrowd = np.asarray(canvases), np.asarray(noncrowd)
    return {"width": np.where(canvases == 0, 640, 480), "height": np.where(canvases == 0, 480, 640),
            "num_instances": noncrowd + 1, "num_crowd": np.ones_like(noncrowd)}


def test_training_stream_batches_one_canvas_visits_evenly_and_any_stretch_of_it_is_the_same():
    index = synthetic_index([0] * 7 + [1] * 4 + [0, 1], [2] * 11 + [0, 0])  # the last two: crowd only
    records, seeds = training_stream(index, seed=5, global_batch=3, start_batch=0, num_batches=40)
    assert records.shape == seeds.shape == (40, 3)
    canvases = record_canvases(index)[records]
    assert (canvases == canvases[:, :1]).all() and set(canvases[:, 0]) == {0, 1}
    counts = np.bincount(records.reshape(-1), minlength=13)
    assert counts[11:].sum() == 0  # records without a non-crowd instance are never visited
    assert counts[:7].max() - counts[:7].min() <= 2 and counts[7:11].max() - counts[7:11].min() <= 2
    assert len(np.unique(seeds)) == seeds.size
    later, later_seeds = training_stream(index, seed=5, global_batch=3, start_batch=25, num_batches=15)
    np.testing.assert_array_equal(later, records[25:])
    np.testing.assert_array_equal(later_seeds, seeds[25:])
    assert not np.array_equal(training_stream(index, 6, 3, 0, 40)[0], records)
    with pytest.raises(ValueError, match="no record has a non-crowd instance"):
        training_stream(synthetic_index([0], [0]), 0, 1, 0, 1)


@requires_shared
def test_train_dataset_resumes_mid_stream_and_its_shards_make_up_the_whole_batch(mini):
    small = load_config(["--input.train_canvases=[[320,448],[448,320]]", "--input.min_size_train=[288,320]",
                         "--input.max_size_train=448"])

    def batches(**kwargs):
        data = create_train_dataset(mini / "train2017", small, num_workers=2, **kwargs)
        return list(data.create_tuple_iterator(output_numpy=True, num_epochs=1))

    whole = batches(batch_size=2, num_batches=6)
    assert {batch[0].shape[2:] for batch in whole} == {(320, 448), (448, 320)}
    for resumed, uninterrupted in zip(batches(batch_size=2, num_batches=2, start_batch=4), whole[4:]):
        for x, y in zip(resumed, uninterrupted):
            np.testing.assert_array_equal(x, y)
    shards = [batches(batch_size=1, num_batches=6, num_shards=2, shard_id=rank) for rank in (0, 1)]
    for combined, first, second in zip(whole, *shards):
        for x, y, z in zip(combined, first, second):
            np.testing.assert_array_equal(x, np.concatenate([y, z]))


@requires_shared
def test_training_drops_images_without_non_crowd_instances(tmp_path, cfg, caplog):
    coco = json.loads((COCO_MINI / "annotations" / "instances_val2017.json").read_text())
    coco["images"] = coco["images"][:3]
    first, crowd_only, _ = (im["id"] for im in coco["images"])
    coco["annotations"] = [dict(a, iscrowd=int(a["image_id"] == crowd_only)) for a in coco["annotations"]
                           if a["image_id"] in (first, crowd_only)]
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(coco))
    convert_coco(ann_file, COCO_MINI / "val2017", tmp_path / "out")
    with caplog.at_level(logging.INFO, logger="maskrcnn_pointrend.data.dataset"):
        data = create_train_dataset(tmp_path / "out", cfg, batch_size=1, num_batches=6, num_workers=1)
    assert "training drops 2 without a non-crowd instance" in caplog.text
    expected = sum(a["image_id"] == first for a in coco["annotations"])
    batches = list(data.create_dict_iterator(output_numpy=True, num_epochs=1))
    assert len(batches) == 6 and all(batch["gt_valid"].sum() == expected for batch in batches)


@requires_shared
def test_test_dataset_matches_the_inference_input(mini, cfg):
    coco = json.loads((COCO_MINI / "annotations" / "instances_val2017.json").read_text())
    rows = list(create_test_dataset(mini / "val2017", cfg).create_dict_iterator(output_numpy=True, num_epochs=1))
    assert [int(r["image_id"]) for r in rows] == [im["id"] for im in coco["images"]]
    inference_input = InferenceInput.from_config(cfg.input)
    for row, info in zip(rows, coco["images"]):
        assert tuple(row["original_size"]) == (info["height"], info["width"])
        h, w = resize_shortest_edge_shape(info["height"], info["width"], 800, 1333)
        assert tuple(row["image_size"]) == (h, w)
        assert row["image"].shape == (3, *((800, 1344) if w > h else (1344, 800))) and row["image"].dtype == np.uint8
    for row, info in zip(rows[:3], coco["images"]):
        expected, _ = inference_input(read_image_bgr(COCO_MINI / "val2017" / info["file_name"]))
        np.testing.assert_array_equal(row["image"], expected)
