"""Detection overlays: translucent instance masks, box outlines and "class score" labels on a BGR image.

Instances are drawn from the lowest score to the highest, so higher scores end on top. Pixels outside
the masks, the box outlines and the label patches keep their input values.
"""
import colorsys
from collections import Counter

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from maskrcnn.atomic_files import atomic_write

GOLDEN_RATIO_CONJUGATE = 0.618033988749895
FONT = cv2.FONT_HERSHEY_SIMPLEX


def instance_colors(classes):
    """(N,) class ids -> (N,3) uint8 BGR: a hue per class, the brightness cycling among a class's instances."""
    seen = Counter()
    colors = np.zeros((len(classes), 3), dtype=np.uint8)
    for i, cls in enumerate(classes):
        value = 1.0 - 0.25 * (seen[cls] % 3)
        seen[cls] += 1
        red, green, blue = colorsys.hsv_to_rgb((cls * GOLDEN_RATIO_CONJUGATE) % 1.0, 0.85, value)
        colors[i] = np.round(np.array([blue, green, red]) * 255)
    return colors


def masks_to_array(masks, height, width):
    """(N,H,W) bool array or N COCO RLEs of (H,W) -> (N,H,W) bool."""
    if isinstance(masks, np.ndarray):
        array = masks.astype(bool)
    elif len(masks) == 0:
        array = np.zeros((0, height, width), dtype=bool)
    else:
        array = np.stack([mask_utils.decode(rle).astype(bool) for rle in masks])
    if array.ndim != 3 or array.shape[1:] != (height, width):
        raise ValueError(f"masks of shape {array.shape} do not match the ({height}, {width}) image")
    return array


def label_patch(text, color, font_scale, padding):
    """Text on a filled background of `color` -> (h,w,3) uint8 patch, black or white text by contrast."""
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, font_scale, 1)
    patch = np.empty((text_h + baseline + 2 * padding, text_w + 2 * padding, 3), dtype=np.uint8)
    patch[:] = color
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    text_color = (0, 0, 0) if luminance > 128 else (255, 255, 255)
    cv2.putText(patch, text, (padding, padding + text_h), FONT, font_scale, text_color, 1, cv2.LINE_AA)
    return patch


def paste_patch(image, patch, x, y):
    """Copy `patch` into `image` with its top-left at (x, y), clipped to the image -> touched (H,W) bool."""
    height, width = image.shape[:2]
    touched = np.zeros((height, width), dtype=bool)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + patch.shape[1], width), min(y + patch.shape[0], height)
    if x0 < x1 and y0 < y1:
        image[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
        touched[y0:y1, x0:x1] = True
    return touched


def draw_detections(image_bgr, boxes_xyxy, classes, scores, masks, class_names, alpha=0.5, line_width=2,
                    font_scale=0.5):
    """Overlay N detections on an (H,W,3) uint8 image -> (overlay (H,W,3) uint8, decorations (H,W) bool).

    boxes_xyxy (N,4) in pixels, classes (N,) indices into class_names, scores (N,), masks (N,H,W) bool or
    N COCO RLEs (None: boxes only). `decorations` marks the pixels of box outlines and label patches;
    every other changed pixel lies in a mask.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 BGR, got {image_bgr.shape} {image_bgr.dtype}")
    height, width = image_bgr.shape[:2]
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(boxes) == len(classes) == len(scores):
        raise ValueError(f"{len(boxes)} boxes, {len(classes)} classes and {len(scores)} scores differ in number")
    if len(classes) and (classes.min() < 0 or classes.max() >= len(class_names)):
        raise ValueError(f"class ids {classes.min()}..{classes.max()} fall outside the {len(class_names)} names")
    if masks is not None:
        masks = masks_to_array(masks, height, width)
        if len(masks) != len(boxes):
            raise ValueError(f"{len(masks)} masks for {len(boxes)} boxes")

    order = np.argsort(scores, kind="stable")
    colors = instance_colors(classes[order].tolist())
    overlay = image_bgr.copy()
    if masks is not None:
        for i, color in zip(order, colors):
            region = masks[i]
            overlay[region] = np.round((1 - alpha) * overlay[region] + alpha * color.astype(np.float64))
    outlines = np.zeros((height, width), dtype=np.uint8)
    decorations = np.zeros((height, width), dtype=bool)
    for i, color in zip(order, colors):
        x0, y0, x1, y1 = (int(round(v)) for v in boxes[i])
        bgr = tuple(int(c) for c in color)
        cv2.rectangle(overlay, (x0, y0), (x1, y1), bgr, line_width, cv2.LINE_8)
        cv2.rectangle(outlines, (x0, y0), (x1, y1), 255, line_width, cv2.LINE_8)
        patch = label_patch(f"{class_names[classes[i]]} {scores[i]:.2f}", bgr, font_scale, padding=2)
        # Above the box when it fits, else just inside its top edge.
        label_y = y0 - patch.shape[0] if y0 - patch.shape[0] >= 0 else y0
        decorations |= paste_patch(overlay, patch, x0, label_y)
    return overlay, decorations | (outlines > 0)


def save_results_overlay(path, image_bgr, results, categories, score_thresh):
    """Overlay of one image's COCO results (boxes XYWH, RLE masks) scoring at least `score_thresh` on the
    (H, W, 3) BGR image, as PNG; categories [(category id, name)] in class order."""
    class_of = {category_id: i for i, (category_id, _) in enumerate(categories)}
    shown = [r for r in results if r["score"] >= score_thresh]
    boxes = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in shown)]
    return save_overlay(path, image_bgr, boxes, [class_of[r["category_id"]] for r in shown],
                        [r["score"] for r in shown], [r["segmentation"] for r in shown],
                        [name for _, name in categories])


def save_overlay(path, image_bgr, boxes_xyxy, classes, scores, masks, class_names, **style):
    """Write draw_detections(...)'s overlay to `path` (.png), complete or not at all -> the overlay."""
    if not path.lower().endswith(".png"):
        raise ValueError(f"{path}: overlays are written as PNG, the name must end in .png")
    overlay, _ = draw_detections(image_bgr, boxes_xyxy, classes, scores, masks, class_names, **style)
    ok, encoded = cv2.imencode(".png", overlay)
    if not ok:
        raise RuntimeError(f"{path}: OpenCV could not encode the overlay as PNG")
    with atomic_write(path, "wb") as f:
        f.write(encoded.tobytes())
    return overlay
