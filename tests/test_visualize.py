"""Overlays change the masks' pixels, the box outlines and labels, and nothing else; PNGs are complete."""
import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskrcnn_pointrend.visualize import draw_detections, save_overlay, save_results_overlay

CLASS_NAMES = ["person", "bicycle", "car"]


def scene():
    """A (90,120,3) image with values in [60, 200] (every instance color has a channel <= 38, so
    blending always changes a pixel) and three detections, the two highest-scoring overlapping."""
    rng = np.random.default_rng(0)
    image = rng.integers(60, 201, size=(90, 120, 3), dtype=np.uint8)
    masks = np.zeros((3, 90, 120), bool)
    masks[0, 30:80, 10:60] = True
    masks[1, 40:85, 40:100] = True
    masks[2, 0:20, 100:120] = True  # touches the image border
    boxes = np.array([[10, 30, 59, 79], [40, 40, 99, 84], [100, 0, 119, 19]], dtype=np.float32)
    return image, boxes, np.array([0, 2, 1]), np.array([0.6, 0.9, 0.3]), masks


def test_only_masks_boxes_and_labels_change():
    image, boxes, classes, scores, masks = scene()
    overlay, decorations = draw_detections(image, boxes, classes, scores, masks, CLASS_NAMES)
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    changed = (overlay != image).any(axis=2)
    in_masks = masks.any(axis=0)
    assert changed[in_masks].all()
    assert not changed[~(in_masks | decorations)].any()
    assert decorations.sum() < 0.5 * decorations.size and decorations[30, 10:60].all()  # top edge of box 0
    assert (image == scene()[0]).all()  # the input is left as it was


def test_higher_scores_are_drawn_on_top_and_colors_are_deterministic():
    image, boxes, classes, scores, masks = scene()
    opaque, decorations = draw_detections(image, boxes, classes, scores, masks, CLASS_NAMES, alpha=1.0)
    overlap = masks[0] & masks[1] & ~decorations
    only_top = masks[1] & ~masks[0] & ~decorations
    top_color = opaque[only_top][0]
    assert (opaque[overlap] == top_color).all() and (opaque[masks[0] & ~masks[1] & ~decorations] != top_color).any()
    again, _ = draw_detections(image, boxes, classes, scores, masks, CLASS_NAMES, alpha=1.0)
    assert (again == opaque).all()


def test_rle_masks_draw_like_boolean_masks():
    image, boxes, classes, scores, masks = scene()
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    from_rle, _ = draw_detections(image, boxes, classes, scores, rles, CLASS_NAMES)
    from_bool, _ = draw_detections(image, boxes, classes, scores, masks, CLASS_NAMES)
    assert (from_rle == from_bool).all()


def test_no_detections_leave_the_image_unchanged():
    image = scene()[0]
    overlay, decorations = draw_detections(image, np.zeros((0, 4)), [], [], np.zeros((0, 90, 120), bool),
                                           CLASS_NAMES)
    assert (overlay == image).all() and not decorations.any()


def test_bad_inputs_are_rejected():
    image, boxes, classes, scores, masks = scene()
    with pytest.raises(ValueError, match="do not match"):
        draw_detections(image, boxes, classes, scores, masks[:, :50], CLASS_NAMES)
    with pytest.raises(ValueError, match="outside the 2 names"):
        draw_detections(image, boxes, classes, scores, masks, CLASS_NAMES[:2])
    with pytest.raises(ValueError, match="differ in number"):
        draw_detections(image, boxes, classes[:2], scores, masks, CLASS_NAMES)


def test_save_overlay_writes_a_complete_png(tmp_path):
    image, boxes, classes, scores, masks = scene()
    path = tmp_path / "overlays" / "000001.png"
    overlay = save_overlay(str(path), image, boxes, classes, scores, masks, CLASS_NAMES)
    written = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert written.shape == image.shape and (written == overlay).all()
    assert [p.name for p in path.parent.iterdir()] == ["000001.png"]
    with pytest.raises(ValueError, match="must end in .png"):
        save_overlay(str(tmp_path / "x.jpg"), image, boxes, classes, scores, masks, CLASS_NAMES)


def test_results_overlay_draws_only_detections_above_the_threshold(tmp_path):
    image, boxes, classes, scores, masks = scene()
    categories = [(1, "person"), (2, "bicycle"), (3, "car")]
    results = []
    for box, cls, score, mask in zip(boxes, classes, scores, masks):
        rle = mask_utils.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode()
        x0, y0, x1, y1 = box.tolist()
        results.append({"image_id": 1, "category_id": categories[cls][0], "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": float(score), "segmentation": rle})
    overlay = save_results_overlay(str(tmp_path / "a.png"), image, results, categories, 0.5)
    _, decorations = draw_detections(image, boxes[:2], classes[:2], scores[:2], masks[:2],
                                     [name for _, name in categories])
    changed = (overlay != image).any(axis=2)
    assert changed[masks[0]].all() and changed[masks[1]].all()
    assert not changed[masks[2] & ~decorations].any()  # the 0.3 detection is not drawn
    assert (cv2.imread(str(tmp_path / "a.png")) == overlay).all()
