"""Synthetic COCO-format instance segmentation for make_synthetic_dataset.py: colored shapes that occlude each
other on textured backgrounds, with a few crowd clusters of tiny shapes, written split by split in the COCO
layout (write_split).

Each image is drawn from its own random stream seeded by (seed, split, index), so it does not depend on
which other images are generated or in what order. Shapes are painted one after another; a later shape
hides part of the earlier ones, and every instance is annotated by its *visible* region: COCO polygons
traced with OpenCV (non-crowd) or an uncompressed RLE (crowd), with area and bbox computed from that
annotation by pycocotools exactly as COCO does.
"""
import colorsys
import json
import os
import zlib
from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np
import pycocotools.mask as mask_util

from maskrcnn_pointrend.data.coco_layout import annotation_path, image_dir

CATEGORIES = (
    {"id": 1, "name": "circle", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
    {"id": 7, "name": "square", "supercategory": "shape"},
    {"id": 12, "name": "star", "supercategory": "shape"},
)
# Each class has its own hue (red, green, blue, yellow) so a small network separates them quickly;
# every instance jitters hue, saturation and brightness around it.
CLASS_HUES = {"circle": 0.0, "triangle": 0.35, "square": 0.62, "star": 0.15}
TEXTURES = ("gradient", "stripes", "checkers", "blotches")
JPEG_QUALITY = 95
_FILL_SHIFT = 4  # cv2.fillPoly fixed-point bits: vertices are placed with 1/16 px precision


@dataclass(frozen=True)
class SyntheticSpec:
    """How images are drawn; radii are fractions of the image's shorter side, areas are in pixels."""
    image_size: int = 256                 # longer side; images are SxS, Sx(3S/4) or (3S/4)xS
    min_instances: int = 1
    max_instances: int = 6
    radius_range: tuple = (0.10, 0.24)    # circumradius of a shape
    crowd_probability: float = 0.15       # chance that an image holds one crowd cluster
    crowd_shapes: tuple = (8, 20)         # number of tiny shapes in a cluster (inclusive range)
    crowd_radius_range: tuple = (0.12, 0.22)
    crowd_shape_radius_range: tuple = (0.02, 0.045)
    min_visible_fraction: float = 0.4     # a placement may not hide more of an earlier instance than this
    placement_tries: int = 20
    min_fragment_area: float = 6.0        # polygons enclosing less than this (px^2) are dropped
    min_visible_area: float = 48.0        # instances whose annotation is smaller than this are dropped
    noise_sigma: float = 6.0              # per-pixel Gaussian noise over the whole image


@dataclass
class SyntheticImage:
    """One generated image with its annotations (no ids yet) and what was left out while drawing it."""
    image: np.ndarray           # (H, W, 3) uint8, BGR
    annotations: list           # COCO annotation dicts without "id" / "image_id"
    hidden_fractions: list      # per annotation: the fraction of its whole shape (in the image) hidden
    dropped: dict               # counts: fragments, instances, placements


@dataclass
class Layer:
    """One painted instance (or crowd cluster): its whole shape and the part later layers leave visible."""
    kind: str
    full: np.ndarray       # (H, W) bool
    visible: np.ndarray    # (H, W) bool
    iscrowd: int


def image_rng(seed, split, index):
    """The random stream of image `index` of `split`, independent of every other image."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def image_shape(rng, image_size):
    """(H, W): square, landscape or portrait with a 4:3 aspect ratio."""
    short = round(image_size * 3 / 4)
    return [(image_size, image_size), (short, image_size), (image_size, short)][rng.integers(3)]


def random_color(rng, hue, hue_jitter, saturation, value):
    """(3,) float BGR in [0, 255] from a hue in [0, 1) and (low, high) ranges of saturation and value."""
    h = (hue + rng.uniform(-hue_jitter, hue_jitter)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*saturation), rng.uniform(*value))
    return np.array([b, g, r]) * 255.0


def shape_color(rng, kind):
    """(3,) float BGR: saturated, near the hue of the shape's class."""
    return random_color(rng, CLASS_HUES[kind], 0.04, (0.6, 1.0), (0.6, 1.0))


def background_color(rng):
    """(3,) float BGR: any hue, less saturated than the shapes."""
    return random_color(rng, rng.uniform(), 0.0, (0.0, 0.4), (0.25, 0.85))


def _projection(h, w, angle):
    """(H, W) coordinate of every pixel along the direction `angle` (radians)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return xs * np.cos(angle) + ys * np.sin(angle)


def _blend(weight, color0, color1):
    """(H, W) weight in [0, 1] -> (H, W, 3) mix of two colors."""
    return color0 + weight[..., None] * (color1 - color0)


def background_texture(rng, h, w):
    """(H, W, 3) float BGR: a linear gradient, stripes, a rotated checkerboard or smooth color blotches."""
    texture = TEXTURES[rng.integers(len(TEXTURES))]
    angle = rng.uniform(0, np.pi)
    if texture == "gradient":
        t = _projection(h, w, angle)
        return _blend((t - t.min()) / max(np.ptp(t), 1e-6), background_color(rng), background_color(rng))
    if texture == "stripes":
        period = rng.uniform(8, 32)
        t = (np.floor(_projection(h, w, angle) / (period / 2)) % 2).astype(np.float64)
        return _blend(t, background_color(rng), background_color(rng))
    if texture == "checkers":
        cell = rng.uniform(8, 32)
        u = np.floor(_projection(h, w, angle) / cell)
        v = np.floor(_projection(h, w, angle + np.pi / 2) / cell)
        return _blend((u + v) % 2, background_color(rng), background_color(rng))
    grid = rng.integers(3, 9)
    coarse = np.stack([background_color(rng) for _ in range(grid * grid)]).reshape(grid, grid, 3)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def shape_vertices(kind, center, radius, angle):
    """(K, 2) float (x, y) outline of a shape with circumradius `radius`, rotated by `angle`."""
    if kind == "circle":
        k, radii = 72, np.full(72, radius)
    elif kind == "triangle":
        k, radii = 3, np.full(3, radius)
    elif kind == "square":
        k, radii = 4, np.full(4, radius)
    elif kind == "star":
        k, radii = 10, np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    else:
        raise ValueError(f"unknown shape {kind!r}; known: {sorted(CLASS_HUES)}")
    theta = angle + 2 * np.pi * np.arange(k) / k
    return np.stack([center[0] + radii * np.cos(theta), center[1] + radii * np.sin(theta)], axis=1)


def rasterize(vertices, h, w):
    """(K, 2) float polygon -> (H, W) bool mask of the pixels it covers (clipped to the image)."""
    mask = np.zeros((h, w), np.uint8)
    points = np.round(vertices * (1 << _FILL_SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=_FILL_SHIFT)
    return mask.astype(bool)


def paint(image, mask, color, rng, center, radius):
    """Fills `mask` of the (H, W, 3) float image with `color`, lit by a soft linear shading."""
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.0, 0.25)
    ys, xs = np.nonzero(mask)
    along = ((xs - center[0]) * np.cos(angle) + (ys - center[1]) * np.sin(angle)) / radius
    image[ys, xs] = np.clip(color[None, :] * (1.0 + strength * along[:, None]), 0, 255)


def random_shape(rng, h, w, spec):
    """(kind, center (x, y), circumradius, rotation) of a shape mostly inside an H x W image."""
    kind = CATEGORIES[rng.integers(len(CATEGORIES))]["name"]
    radius = rng.uniform(*spec.radius_range) * min(h, w)
    center = (rng.uniform(0.6 * radius, w - 0.6 * radius), rng.uniform(0.6 * radius, h - 0.6 * radius))
    return kind, center, radius, rng.uniform(0, 2 * np.pi)


def has_hole(mask):
    """True when the (H, W) bool mask encloses background, which COCO polygons cannot describe."""
    _, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def hides_too_much(new_mask, layers, min_visible_fraction):
    """True when painting `new_mask` on top of `layers` would leave one of them too little visible
    region, or put a hole in a non-crowd instance's visible region."""
    for layer in layers:
        if not (layer.visible & new_mask).any():
            continue
        remaining = layer.visible & ~new_mask
        if remaining.sum() < min_visible_fraction * layer.full.sum():
            return True
        if not layer.iscrowd and has_hole(remaining):
            return True
    return False


def crowd_cluster(rng, image, spec):
    """Paints a cluster of many tiny shapes of one class; returns (kind, (H, W) bool union mask)."""
    h, w = image.shape[:2]
    kind = CATEGORIES[rng.integers(len(CATEGORIES))]["name"]
    cluster_radius = rng.uniform(*spec.crowd_radius_range) * min(h, w)
    cx, cy = rng.uniform(cluster_radius, w - cluster_radius), rng.uniform(cluster_radius, h - cluster_radius)
    union = np.zeros((h, w), bool)
    for _ in range(rng.integers(spec.crowd_shapes[0], spec.crowd_shapes[1] + 1)):
        distance, direction = cluster_radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        center = (cx + distance * np.cos(direction), cy + distance * np.sin(direction))
        radius = rng.uniform(*spec.crowd_shape_radius_range) * min(h, w)
        mask = rasterize(shape_vertices(kind, center, radius, rng.uniform(0, 2 * np.pi)), h, w)
        paint(image, mask, shape_color(rng, kind), rng, center, radius)
        union |= mask
    return kind, union


def polygons_from_mask(mask, min_fragment_area):
    """(H, W) bool -> (COCO polygons [[x0, y0, x1, y1, ...], ...], number of fragments dropped).

    OpenCV traces the centers of boundary pixels; +0.5 moves them to COCO's continuous coordinates, where
    pixel (x, y) spans [x, x + 1) x [y, y + 1).
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [(c.reshape(-1, 2) + 0.5).ravel().tolist()
                for c in contours if len(c) >= 3 and cv2.contourArea(c) >= min_fragment_area]
    return polygons, len(contours) - len(polygons)


def uncompressed_rle(mask):
    """(H, W) bool -> COCO crowd RLE {"size": [H, W], "counts": [...]}: run lengths in column-major
    order, starting with a (possibly empty) run of zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def annotation(segmentation, category_id, iscrowd, h, w):
    """COCO annotation dict (without ids) whose area and bbox pycocotools derives from `segmentation`."""
    rle = mask_util.frPyObjects(segmentation, h, w)
    if isinstance(segmentation, list):
        rle = mask_util.merge(rle)
    return {
        "category_id": category_id,
        "segmentation": segmentation,
        "area": float(mask_util.area(rle)),
        "bbox": [float(v) for v in mask_util.toBbox(rle)],
        "iscrowd": iscrowd,
    }


def synthesize_image(seed, split, index, spec):
    """Draws image `index` of `split` and annotates the visible region of every instance."""
    rng = image_rng(seed, split, index)
    h, w = image_shape(rng, spec.image_size)
    image = background_texture(rng, h, w)
    category_ids = {c["name"]: c["id"] for c in CATEGORIES}
    layers = []
    if rng.uniform() < spec.crowd_probability:
        kind, mask = crowd_cluster(rng, image, spec)
        layers.append(Layer(kind, mask, mask.copy(), 1))
    num_instances = rng.integers(spec.min_instances, spec.max_instances + 1)
    placements_skipped = 0
    for _ in range(num_instances):
        for _ in range(spec.placement_tries):
            kind, center, radius, angle = random_shape(rng, h, w, spec)
            mask = rasterize(shape_vertices(kind, center, radius, angle), h, w)
            if not hides_too_much(mask, layers, spec.min_visible_fraction):
                break
        else:
            placements_skipped += 1
            continue
        paint(image, mask, shape_color(rng, kind), rng, center, radius)
        for layer in layers:
            layer.visible &= ~mask
        layers.append(Layer(kind, mask, mask.copy(), 0))
    image = np.clip(image + rng.normal(0.0, spec.noise_sigma, image.shape), 0, 255).astype(np.uint8)

    annotations, hidden_fractions = [], []
    fragments_dropped = instances_dropped = 0
    for layer in layers:
        if layer.iscrowd:
            segmentation = uncompressed_rle(layer.visible)
        else:
            segmentation, dropped = polygons_from_mask(layer.visible, spec.min_fragment_area)
            fragments_dropped += dropped
        ann = annotation(segmentation, category_ids[layer.kind], layer.iscrowd, h, w) if segmentation else None
        if ann is None or ann["area"] < spec.min_visible_area:
            instances_dropped += 1
            continue
        annotations.append(ann)
        hidden_fractions.append(1.0 - layer.visible.sum() / layer.full.sum())
    dropped = {"fragments": fragments_dropped, "instances": instances_dropped, "placements": placements_skipped}
    return SyntheticImage(image, annotations, hidden_fractions, dropped)


def coco_dataset(samples, description):
    """COCO json dict from [(file_name, height, width, annotations)], numbering images and annotations
    from 1 in the order given."""
    images, annotations = [], []
    for image_id, (file_name, height, width, anns) in enumerate(samples, start=1):
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    return {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }


def write_split(root, split, num_images, spec, seed):
    """Writes the split's images and annotation file under `root` (data/coco_layout); returns statistics."""
    os.makedirs(image_dir(root, split))
    samples = []
    stats = {"images": num_images, "sizes": Counter(), "instances": Counter(), "crowd": 0, "occluded": 0,
             "dropped": Counter()}
    names = {c["id"]: c["name"] for c in CATEGORIES}
    for index in range(num_images):
        sample = synthesize_image(seed, split, index, spec)
        file_name = f"{index + 1:06d}.jpg"
        path = os.path.join(image_dir(root, split), file_name)
        if not cv2.imwrite(path, sample.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {path}")
        height, width = sample.image.shape[:2]
        samples.append((file_name, height, width, sample.annotations))
        stats["sizes"][f"{height}x{width}"] += 1
        stats["dropped"].update(sample.dropped)
        for ann, hidden in zip(sample.annotations, sample.hidden_fractions):
            if ann["iscrowd"]:
                stats["crowd"] += 1
            else:
                stats["instances"][names[ann["category_id"]]] += 1
                stats["occluded"] += hidden > 0
    description = f"synthetic shapes, split {split}, seed {seed}, image_size {spec.image_size}"
    path = annotation_path(root, split)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(coco_dataset(samples, description), f)
    return stats


def format_stats(split, stats):
    instances = ", ".join(f"{name} {stats['instances'][name]}" for name in (c["name"] for c in CATEGORIES))
    sizes = ", ".join(f"{size} {n}" for size, n in sorted(stats["sizes"].items()))
    dropped = stats["dropped"]
    return (f"[{split}] {stats['images']} images ({sizes}); {sum(stats['instances'].values())} instances "
            f"({instances}), {stats['occluded']} partly hidden; {stats['crowd']} crowd regions; left out: "
            f"{dropped['placements']} shapes that found no place, {dropped['fragments']} fragments under the "
            f"minimum area, {dropped['instances']} instances whose visible area was too small")
