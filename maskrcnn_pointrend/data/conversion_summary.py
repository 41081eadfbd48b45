"""What a COCO -> MindRecord conversion kept and skipped: the summary (`summary.json`) and its table.

Skipped images, by reason: the problems image_check finds (`missing_file`, `unreadable_image`,
`unsupported_pixel_format`, `size_mismatch`: an image whose size differs from the json's is not converted,
never resized) and `duplicate_image_id` (see coco_json). Their annotations are counted as
`on_skipped_image`; other skipped annotations: see coco_json. Images without annotations are converted
(evaluation needs them; the training pipeline leaves them out).
"""
import os

import pandas as pd

from .coco_json import ANNOTATION_SKIP_REASONS, IMAGE_SKIP_REASONS as JSON_IMAGE_SKIP_REASONS
from .image_check import IMAGE_PROBLEMS

IMAGE_SKIP_REASONS = IMAGE_PROBLEMS + JSON_IMAGE_SKIP_REASONS


def conversion_summary(coco, entries, files, image_bytes):
    """The loaded annotation file (its skips include the images found bad), the converted ImageEntries, the
    shard files and the bytes of their images -> the summary dict: counts per item and skip reason, examples."""
    image_skips, annotation_skips = coco.image_skips, coco.annotation_skips
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
