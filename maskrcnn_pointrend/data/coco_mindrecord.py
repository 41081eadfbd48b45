"""COCO -> MindRecord: the record schema, the parallel converter with atomic output, and reading it back.

One record per image holds what COCO stores: the image file's bytes as they are, and per instance its
json box (XYXY), contiguous class, iscrowd and segmentation (polygons or compressed RLE), never a bitmap.

A converted directory holds:
- `shard_000.mindrecord` (+ `.db`), ...: the records (SCHEMA), images split evenly over the shards;
- `categories.json`: the COCO categories sorted by id, i.e. in contiguous class order;
- `image_index.json`: per record, in order: image_id, file_name, height, width, num_instances, num_crowd;
- `summary.json`: images, instances, crowd, and what was skipped by reason (with example ids);
- `_COMPLETE`: written last. Readers refuse a directory without it.
All of it is written to a temporary directory beside the output, renamed into place once complete.

Skipped images, by reason: the problems image_check finds (`missing_file`, `unreadable_image`,
`unsupported_pixel_format`, `size_mismatch`: an image whose size differs from the json's is not converted,
never resized) and `duplicate_image_id` (see coco_json). Their annotations are counted as
`on_skipped_image`; other skipped annotations: see coco_json. Images without annotations are converted
(evaluation needs them; the training pipeline leaves them out).
"""
import json
import logging
import os
import shutil
from dataclasses import dataclass

import mindspore.dataset as ds
import numpy as np
import pandas as pd
import psutil
from mindspore.mindrecord import FileWriter

from ..output_files import apply_umask, prepare_output_dir
from ..progress import progress_bar
from ..stop_signals import sigterm_raises_system_exit
from .coco_json import ANNOTATION_SKIP_REASONS, IMAGE_SKIP_REASONS as JSON_IMAGE_SKIP_REASONS, load_coco_annotations
from .image_check import IMAGE_PROBLEMS, inspect_images
from .transforms import read_image_bgr

logger = logging.getLogger(__name__)

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
INSTANCE_COLUMNS = ("num_instances", "boxes", "classes", "iscrowd", "ann_ids", "poly_counts", "poly_lengths",
                    "poly_coords", "rle_lengths", "rle_counts")
BLOB_FIELDS = tuple(k for k, spec in SCHEMA.items() if spec["type"] == "bytes" or "shape" in spec)
IMAGE_SKIP_REASONS = IMAGE_PROBLEMS + JSON_IMAGE_SKIP_REASONS
COMPLETE_MARKER = "_COMPLETE"
CATEGORIES_FILE = "categories.json"
IMAGE_INDEX_FILE = "image_index.json"
SUMMARY_FILE = "summary.json"

# MindRecord never splits a record across pages and pads every page but the file's last to the page size,
# so the default 32 MB pages would make a small dataset several times its size: pages are sized to the data.
MAX_PAGE_SIZE = 256 << 20  # MindRecord's limits
MIN_PAGE_SIZE = 32 << 10
PAGE_ALIGN = 4096
BLOB_FIELD_OVERHEAD = 32   # bytes per blob field of a record, above MindRecord's length prefix (measured: 8)
RECORD_OVERHEAD = 256
RAW_ROW_BYTES = 512        # a generous estimate of a record's scalar fields, for the header size
HEADER_BYTES_PER_PAGE = 512  # the header describes each page in about 180 bytes (measured)
WRITE_BATCH = 32


class IncompleteDatasetError(RuntimeError):
    pass


class OutputExistsError(FileExistsError):
    pass


@dataclass
class RecordInstances:
    boxes: np.ndarray       # (N, 4) float64 XYXY
    classes: np.ndarray     # (N,) int32
    iscrowd: np.ndarray     # (N,) int32
    ann_ids: np.ndarray     # (N,) int64
    segmentations: list     # per instance: a list of (2P,) float64 polygons, or compressed RLE bytes


def encode_record(entry, image_bytes):
    """An ImageEntry and its file's bytes -> a record dict of SCHEMA."""
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


def record_blob_bytes(entry, file_bytes):
    """An upper bound of the bytes MindRecord stores in blob pages for `entry`'s record."""
    blobs = [v for k, v in encode_record(entry, b"").items() if k in BLOB_FIELDS]
    data = sum(v.nbytes if isinstance(v, np.ndarray) else len(v) for v in blobs)
    return file_bytes + data + len(BLOB_FIELDS) * BLOB_FIELD_OVERHEAD + RECORD_OVERHEAD


def _shard_page_layout(blob_bytes):
    largest, total = max(blob_bytes), sum(blob_bytes)
    if largest > MAX_PAGE_SIZE - PAGE_ALIGN:
        raise ValueError(f"a record of {largest} bytes exceeds MindRecord's largest page ({MAX_PAGE_SIZE} bytes)")
    pages = -(-total // (MAX_PAGE_SIZE - PAGE_ALIGN - largest))
    # greedy filling leaves less than `largest` free in a page, so pages of total/pages + largest suffice
    page = total if pages == 1 else -(-total // pages) + largest
    page = max(MIN_PAGE_SIZE, -(-page // PAGE_ALIGN) * PAGE_ALIGN)
    raw_pages = -(-len(blob_bytes) * RAW_ROW_BYTES // page)
    header = max(1 << 16, 1 << (HEADER_BYTES_PER_PAGE * (pages + raw_pages + 4)).bit_length())
    return page, header


def page_layout(shard_blob_bytes):
    """Per shard, the blob bytes of its records -> (page size, header size) for all shards (MindDataset
    reads shards together only when these agree): few, evenly filled pages per shard."""
    pages, headers = zip(*(_shard_page_layout(blob_bytes) for blob_bytes in shard_blob_bytes))
    return max(pages), max(headers)


def balanced_shards(blob_bytes, shards):
    """Record sizes -> `shards` non-empty contiguous slices of about equal bytes (all shards share one page
    size, so a smaller shard would leave its last page emptier)."""
    cumulative = np.cumsum(blob_bytes)
    bounds = [0]
    for i in range(1, shards):
        cut = int(np.searchsorted(cumulative, cumulative[-1] * i / shards)) + 1
        bounds.append(min(max(cut, bounds[-1] + 1), len(blob_bytes) - (shards - i)))
    bounds.append(len(blob_bytes))
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


def _write_shard(path, entries, image_dir, page, header, bar):
    writer = FileWriter(path, shard_num=1, overwrite=False)
    writer.set_header_size(header)
    writer.set_page_size(page)
    writer.add_schema(SCHEMA, "coco_instances")
    writer.add_index(["image_id"])
    for start in range(0, len(entries), WRITE_BATCH):
        batch = []
        for entry in entries[start:start + WRITE_BATCH]:
            with open(os.path.join(image_dir, entry.file_name), "rb") as f:
                batch.append(encode_record(entry, f.read()))
        writer.write_raw_data(batch)
        bar.update(len(batch))
    writer.commit()
    for written in (path, path + ".db"):
        apply_umask(written)


def _count_records(files):
    return ds.MindDataset(files, columns_list=["image_id"], shuffle=False).get_dataset_size()


def _image_index(entries):
    return {
        "image_id": [e.image_id for e in entries],
        "file_name": [e.file_name for e in entries],
        "height": [e.height for e in entries],
        "width": [e.width for e in entries],
        "num_instances": [len(e.instances) for e in entries],
        "num_crowd": [sum(inst.iscrowd for inst in e.instances) for e in entries],
    }


def _summary(coco, entries, image_skips, annotation_skips, files, image_bytes):
    noncrowd = [len(e.instances) - sum(i.iscrowd for i in e.instances) for e in entries]
    instances = sum(len(e.instances) for e in entries)
    crowd = sum(i.iscrowd for e in entries for i in e.instances)
    return {
        "annotation_file": coco.path,
        "images": {
            "in_file": len(coco.images) + image_skips.counts["duplicate_image_id"],
            "converted": len(entries),
            "without_annotations": sum(1 for e in entries if not e.instances),
            "without_non_crowd_instances": sum(1 for n in noncrowd if n == 0),
            "skipped": {r: image_skips.counts[r] for r in IMAGE_SKIP_REASONS},
        },
        "annotations": {
            "in_file": coco.num_annotations,
            "instances": instances,
            "crowd": crowd,
            "skipped": {r: annotation_skips.counts[r] for r in ANNOTATION_SKIP_REASONS},
            "polygon_parts_dropped": coco.dropped_polygon_parts,
        },
        "examples": {**image_skips.examples, **annotation_skips.examples},
        "files": [os.path.basename(f) for f in files],
        "image_bytes": image_bytes,
    }


def summary_table(summary):
    """The conversion summary -> a pandas table (section, item, count)."""
    rows = []
    for section in ("images", "annotations"):
        for item, value in summary[section].items():
            if isinstance(value, dict):
                rows += [(section, f"skipped: {reason}", count) for reason, count in value.items()]
            else:
                rows.append((section, item, value))
    return pd.DataFrame(rows, columns=["section", "item", "count"])


def _temporary_dir(output_dir, kind):
    parent, name = os.path.split(output_dir)
    return os.path.join(parent, f".{name}.{kind}-{os.getpid()}")


def _remove_stale_temporaries(output_dir):
    """Removes what killed conversions to `output_dir` left behind (their process is gone)."""
    parent, name = os.path.split(output_dir)
    if not os.path.isdir(parent):
        return
    for entry in os.listdir(parent):
        kind, _, pid = entry.rpartition("-")
        if kind in (f".{name}.incomplete", f".{name}.replaced") and pid.isdigit() and not psutil.pid_exists(int(pid)):
            logger.warning("removing %s, left by an interrupted conversion", os.path.join(parent, entry))
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _check_output_free(output_dir, overwrite):
    if not os.path.exists(output_dir) or overwrite:
        return
    if os.path.isfile(os.path.join(output_dir, COMPLETE_MARKER)):
        raise OutputExistsError(f"{output_dir} already holds a complete conversion")
    if not os.path.isdir(output_dir) or os.listdir(output_dir):
        raise OutputExistsError(f"{output_dir} exists and is not a complete conversion")


def _publish(temporary, output_dir, overwrite):
    _check_output_free(output_dir, overwrite)
    replaced = None
    if os.path.lexists(output_dir):
        replaced = _temporary_dir(output_dir, "replaced")
        os.rename(output_dir, replaced)
    os.rename(temporary, output_dir)
    if replaced and os.path.isdir(replaced):
        shutil.rmtree(replaced)
    elif replaced:
        os.remove(replaced)


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def convert_coco(ann_file, image_dir, output_dir, shards=1, workers=1, overwrite=False):
    """Converts a COCO instances json and its image directory to MindRecord in `output_dir`; -> summary dict.

    Raises AnnotationFileError for a malformed json, OutputExistsError when `output_dir` holds data and
    `overwrite` is False, OutputLocationError when its folder cannot be written. On any error, SIGTERM
    included, nothing is left at `output_dir` and beside it.
    """
    output_dir = os.path.abspath(output_dir)
    _remove_stale_temporaries(output_dir)
    _check_output_free(output_dir, overwrite)
    prepare_output_dir(os.path.dirname(output_dir), f"the output {output_dir}: its folder")
    coco = load_coco_annotations(ann_file)
    checks = inspect_images([(os.path.join(image_dir, im.file_name), im.height, im.width) for im in coco.images],
                            workers)
    image_skips, annotation_skips = coco.image_skips, coco.annotation_skips
    entries, file_bytes = [], []
    for entry, check in zip(coco.images, checks):
        if check.problem is None:
            entries.append(entry)
            file_bytes.append(check.num_bytes)
        else:
            image_skips.add(check.problem, entry.file_name)
            if entry.instances:
                annotation_skips.add("on_skipped_image", entry.instances[0].ann_id, len(entry.instances))
    if not entries:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in image_skips.counts.items())
        raise ValueError(f"none of the images of {ann_file} in {image_dir} could be converted ({reasons})")
    if shards > len(entries):
        logger.warning("%d shards asked for %d images: writing %d", shards, len(entries), len(entries))
        shards = len(entries)
    temporary = _temporary_dir(output_dir, "incomplete")
    with sigterm_raises_system_exit():
        summary = _write_conversion(temporary, output_dir, overwrite, coco, entries, file_bytes, image_dir, shards)
    skipped_images = sum(summary["images"]["skipped"].values())
    skipped_annotations = sum(summary["annotations"]["skipped"].values())
    if skipped_images or skipped_annotations or coco.dropped_polygon_parts:
        logger.warning("%s: skipped %d images, %d annotations and %d polygon parts; counts by reason and "
                       "examples in %s", ann_file, skipped_images, skipped_annotations, coco.dropped_polygon_parts,
                       os.path.join(output_dir, SUMMARY_FILE))
    return summary


def _write_conversion(temporary, output_dir, overwrite, coco, entries, file_bytes, image_dir, shards):
    """Write the records of `entries` and the json files in `temporary`, then publish it as `output_dir` -> the
    summary; on any error (SystemExit and KeyboardInterrupt included) remove `temporary`."""
    os.makedirs(temporary)
    try:
        blob_bytes = [record_blob_bytes(e, n) for e, n in zip(entries, file_bytes)]
        shard_slices = balanced_shards(blob_bytes, shards)
        page, header = page_layout([blob_bytes[s] for s in shard_slices])
        files = [os.path.join(temporary, f"shard_{i:03d}.mindrecord") for i in range(shards)]
        with progress_bar(len(entries), "writing records", "img") as bar:
            for path, shard in zip(files, shard_slices):
                _write_shard(path, entries[shard], image_dir, page, header, bar)
        # FileWriter drops a row that does not match the schema with a warning only: count what it took
        written = _count_records(files)
        if written != len(entries):
            raise RuntimeError(f"MindRecord took {written} of {len(entries)} records (see its warnings above)")
        summary = _summary(coco, entries, coco.image_skips, coco.annotation_skips, files, sum(file_bytes))
        _write_json(os.path.join(temporary, CATEGORIES_FILE), coco.categories)
        _write_json(os.path.join(temporary, IMAGE_INDEX_FILE), _image_index(entries))
        _write_json(os.path.join(temporary, SUMMARY_FILE), summary)
        _write_json(os.path.join(temporary, COMPLETE_MARKER), {
            "files": summary["files"], "images": len(entries), "instances": summary["annotations"]["instances"],
            "crowd": summary["annotations"]["crowd"], "categories": len(coco.categories)})
        _publish(temporary, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return summary


def read_completion(mindrecord_dir):
    """-> the `_COMPLETE` marker of a converted directory; IncompleteDatasetError when it is not complete."""
    marker = os.path.join(mindrecord_dir, COMPLETE_MARKER)
    if not os.path.isdir(mindrecord_dir):
        raise IncompleteDatasetError(f"{mindrecord_dir} does not exist; create it with convert_coco.py")
    if not os.path.isfile(marker):
        raise IncompleteDatasetError(f"{mindrecord_dir} has no {COMPLETE_MARKER} marker: its conversion did not "
                                     "finish; run convert_coco.py again with --overwrite")
    with open(marker) as f:
        return json.load(f)


def mindrecord_files(mindrecord_dir):
    """-> the shard files of a complete conversion."""
    files = [os.path.join(mindrecord_dir, name) for name in read_completion(mindrecord_dir)["files"]]
    missing = [f for f in files if not os.path.isfile(f) or not os.path.isfile(f + ".db")]
    if missing:
        raise IncompleteDatasetError(f"{mindrecord_dir} lacks {', '.join(missing)}; convert it again")
    return files


def _read_json(mindrecord_dir, name):
    read_completion(mindrecord_dir)
    with open(os.path.join(mindrecord_dir, name)) as f:
        return json.load(f)


def read_category_map(mindrecord_dir):
    """-> COCO category dicts (id, name, ...) in contiguous class order: index i is class i."""
    return _read_json(mindrecord_dir, CATEGORIES_FILE)


def read_image_index(mindrecord_dir):
    """-> {column: (num_records,) array}: image_id, file_name, height, width, num_instances, num_crowd."""
    return {k: np.asarray(v) for k, v in _read_json(mindrecord_dir, IMAGE_INDEX_FILE).items()}


def read_summary(mindrecord_dir):
    """-> the conversion summary (counts per reason)."""
    return _read_json(mindrecord_dir, SUMMARY_FILE)


def read_record_images(mindrecord_dir, image_ids):
    """{image_id: (H, W, 3) uint8 BGR} of the records with these ids, decoded from the records' file bytes."""
    wanted, found = set(image_ids), {}
    records = ds.MindDataset(mindrecord_files(mindrecord_dir), columns_list=["image", "image_id"], shuffle=False)
    for row in records.create_dict_iterator(output_numpy=True, num_epochs=1):
        image_id = int(row["image_id"])
        if image_id in wanted:
            found[image_id] = read_image_bgr(row["image"].tobytes())
            if len(found) == len(wanted):
                break
    return found
