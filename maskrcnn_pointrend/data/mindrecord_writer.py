"""COCO -> MindRecord: converts a COCO instances json and its images to a directory of the format of
mindrecord_schema, in parallel where it pays (checking the images), with atomic output.

All of the directory is written to a temporary directory beside the output and renamed into place once
complete; a conversion that fails or is stopped (SIGTERM included) leaves nothing, and one that was killed
leaves a temporary directory the next conversion to the same output removes.
"""
import json
import logging
import os

import mindspore.dataset as ds
from mindspore.mindrecord import FileWriter

from maskrcnn.atomic_files import apply_umask
from ..output_files import atomic_output_dir, prepare_output_dir, remove_stale_output_dirs
from ..progress import progress_bar
from ..stop_signals import sigterm_raises_system_exit
from .coco_json import load_coco_annotations
from .conversion_summary import conversion_summary
from .image_check import inspect_images
from .mindrecord_pages import balanced_shards, page_layout, record_blob_bytes
from .mindrecord_schema import (CATEGORIES_FILE, COMPLETE_MARKER, IMAGE_INDEX_FILE, INDEX_FIELDS, SCHEMA,
                                SCHEMA_NAME, SUMMARY_FILE, encode_record, shard_file_name)

logger = logging.getLogger(__name__)

WRITE_BATCH = 32


class OutputExistsError(FileExistsError):
    pass


def _write_shard(path, entries, image_dir, page, header, bar):
    writer = FileWriter(path, shard_num=1, overwrite=False)
    writer.set_header_size(header)
    writer.set_page_size(page)
    writer.add_schema(SCHEMA, SCHEMA_NAME)
    writer.add_index(INDEX_FIELDS)
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


def _check_output_free(output_dir, overwrite):
    if not os.path.exists(output_dir) or overwrite:
        return
    if os.path.isfile(os.path.join(output_dir, COMPLETE_MARKER)):
        raise OutputExistsError(f"{output_dir} already holds a complete conversion")
    if not os.path.isdir(output_dir) or os.listdir(output_dir):
        raise OutputExistsError(f"{output_dir} exists and is not a complete conversion")


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
    remove_stale_output_dirs(output_dir)
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
    with sigterm_raises_system_exit():
        summary = _write_conversion(output_dir, overwrite, coco, entries, file_bytes, image_dir, shards)
    skipped_images = sum(summary["images"]["skipped"].values())
    skipped_annotations = sum(summary["annotations"]["skipped"].values())
    if skipped_images or skipped_annotations or coco.dropped_polygon_parts:
        logger.warning("%s: skipped %d images, %d annotations and %d polygon parts; counts by reason and "
                       "examples in %s", ann_file, skipped_images, skipped_annotations, coco.dropped_polygon_parts,
                       os.path.join(output_dir, SUMMARY_FILE))
    return summary


def _write_conversion(output_dir, overwrite, coco, entries, file_bytes, image_dir, shards):
    """Write the records of `entries` and the json files as `output_dir`, atomically -> the summary."""
    with atomic_output_dir(output_dir, lambda: _check_output_free(output_dir, overwrite)) as temporary:
        blob_bytes = [record_blob_bytes(e, n) for e, n in zip(entries, file_bytes)]
        shard_slices = balanced_shards(blob_bytes, shards)
        page, header = page_layout([blob_bytes[s] for s in shard_slices])
        files = [os.path.join(temporary, shard_file_name(i)) for i in range(shards)]
        with progress_bar(len(entries), "writing records", "img") as bar:
            for path, shard in zip(files, shard_slices):
                _write_shard(path, entries[shard], image_dir, page, header, bar)
        # FileWriter drops a row that does not match the schema with a warning only: count what it took
        written = _count_records(files)
        if written != len(entries):
            raise RuntimeError(f"MindRecord took {written} of {len(entries)} records (see its warnings above)")
        summary = conversion_summary(coco, entries, files, sum(file_bytes))
        _write_json(os.path.join(temporary, CATEGORIES_FILE), coco.categories)
        _write_json(os.path.join(temporary, IMAGE_INDEX_FILE), _image_index(entries))
        _write_json(os.path.join(temporary, SUMMARY_FILE), summary)
        _write_json(os.path.join(temporary, COMPLETE_MARKER), {
            "files": summary["files"], "images": len(entries), "instances": summary["annotations"]["instances"],
            "crowd": summary["annotations"]["crowd"], "categories": len(coco.categories)})
    return summary
