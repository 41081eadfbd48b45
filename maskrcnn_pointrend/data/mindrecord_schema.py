"""The format of a converted COCO split: the files of its directory and the record of one image.

One record per image holds what COCO stores: the image file's bytes as they are, and per instance its
json box (XYXY), contiguous class, iscrowd and segmentation (polygons or compressed RLE), never a bitmap.

A converted directory holds:
- `shard_000.mindrecord` (+ `.db`), ...: the records (SCHEMA), images split evenly over the shards;
- `categories.json`: the COCO categories sorted by id, i.e. in contiguous class order;
- `image_index.json`: per record, in order: image_id, file_name, height, width, num_instances, num_crowd;
- `summary.json`: images, instances, crowd, and what was skipped by reason, with examples (conversion_summary);
- `_COMPLETE`: written last, with the shard files and counts. Readers refuse a directory without it.
"""
from dataclasses import dataclass

import numpy as np

SCHEMA = {
    "image": {"type": "bytes"},                          # the image file's bytes, not re-encoded
    "image_id": {"type": "int64"},
    "file_name": {"type": "string"},
    "height": {"type": "int32"},
    "width": {"type": "int32"},
    "num_instances": {"type": "int32"},                  # N
    "boxes": {"type": "float64", "shape": [-1]},         # (N * 4) XYXY of the json bbox, as detectron2 computes it
    "classes": {"type": "int32", "shape": [-1]},         # (N,) contiguous class index
    "iscrowd": {"type": "int32", "shape": [-1]},         # (N,)
    "ann_ids": {"type": "int64", "shape": [-1]},         # (N,) COCO annotation ids
    "poly_counts": {"type": "int32", "shape": [-1]},     # (N,) polygon parts of each instance, 0 for RLE
    "poly_lengths": {"type": "int32", "shape": [-1]},    # (sum(poly_counts),) coordinates in each part
    # float64: COCO's coordinates as the json has them; float32 changes pycocotools' rasterization of
    # about a third of COCO's polygons (its rounding of 5 * x hits ties at x.1, x.3, ...)
    "poly_coords": {"type": "float64", "shape": [-1]},   # (sum(poly_lengths),) x0, y0, x1, y1, ...
    "rle_lengths": {"type": "int32", "shape": [-1]},     # (N,) bytes of compressed RLE counts, 0 for polygons
    "rle_counts": {"type": "bytes"},                     # the instances' compressed RLE counts, concatenated
}
SCHEMA_NAME = "coco_instances"
INDEX_FIELDS = ["image_id"]
INSTANCE_COLUMNS = ("num_instances", "boxes", "classes", "iscrowd", "ann_ids", "poly_counts", "poly_lengths",
                    "poly_coords", "rle_lengths", "rle_counts")
BLOB_FIELDS = tuple(k for k, spec in SCHEMA.items() if spec["type"] == "bytes" or "shape" in spec)
COMPLETE_MARKER = "_COMPLETE"
CATEGORIES_FILE = "categories.json"
IMAGE_INDEX_FILE = "image_index.json"
SUMMARY_FILE = "summary.json"


def shard_file_name(index):
    """-> the file name of shard `index` (its index file adds `.db`)."""
    return f"shard_{index:03d}.mindrecord"


@dataclass
class RecordInstances:
    boxes: np.ndarray       # (N, 4) float64 XYXY
    classes: np.ndarray     # (N,) int32
    iscrowd: np.ndarray     # (N,) int32
    ann_ids: np.ndarray     # (N,) int64
    segmentations: list     # per instance: a list of (2P,) float64 polygons, or compressed RLE bytes


def encode_record(entry, image_bytes):
    """A coco_json.ImageEntry and its file's bytes -> a record dict of SCHEMA."""
    instances = entry.instances
    polygons = [p for inst in instances if inst.polygons for p in inst.polygons]
    rles = [inst.rle if inst.rle is not None else b"" for inst in instances]
    return {
        "image": image_bytes,
        "image_id": entry.image_id,
        "file_name": entry.file_name,
        "height": entry.height,
        "width": entry.width,
        "num_instances": len(instances),
        "boxes": np.asarray([inst.box for inst in instances], np.float64).reshape(-1),
        "classes": np.asarray([inst.category for inst in instances], np.int32),
        "iscrowd": np.asarray([inst.iscrowd for inst in instances], np.int32),
        "ann_ids": np.asarray([inst.ann_id for inst in instances], np.int64),
        "poly_counts": np.asarray([len(inst.polygons or ()) for inst in instances], np.int32),
        "poly_lengths": np.asarray([len(p) for p in polygons], np.int32),
        "poly_coords": np.concatenate(polygons) if polygons else np.zeros(0, np.float64),
        "rle_lengths": np.asarray([len(r) for r in rles], np.int32),
        "rle_counts": b"".join(rles),
    }


def _flat(column, length):
    # MindDataset hands an empty array column back as a 0-d array, so the counts say what is real
    return np.asarray(column).reshape(-1)[:length]


def _as_bytes(column):
    return column.tobytes() if isinstance(column, np.ndarray) else bytes(column)


def decode_instances(row):
    """A record's INSTANCE_COLUMNS (a dict, as MindDataset yields them) -> RecordInstances."""
    n = int(row["num_instances"])
    poly_counts = _flat(row["poly_counts"], n)
    poly_lengths = _flat(row["poly_lengths"], int(poly_counts.sum()))
    coords = _flat(row["poly_coords"], int(poly_lengths.sum()))
    parts = np.split(coords, np.cumsum(poly_lengths)[:-1]) if len(poly_lengths) else []
    part_ends = np.cumsum(poly_counts)
    rle_lengths = _flat(row["rle_lengths"], n)
    rle_ends = np.cumsum(rle_lengths)
    rle_bytes = _as_bytes(row["rle_counts"])
    segmentations = []
    for i in range(n):
        if poly_counts[i]:
            segmentations.append(parts[part_ends[i] - poly_counts[i]:part_ends[i]])
        else:
            segmentations.append(rle_bytes[rle_ends[i] - rle_lengths[i]:rle_ends[i]])
    boxes = _flat(row["boxes"], 4 * n).astype(np.float64).reshape(n, 4)  # conversions before 2026-11 hold float32
    return RecordInstances(boxes, _flat(row["classes"], n),
                           _flat(row["iscrowd"], n), _flat(row["ann_ids"], n), segmentations)
