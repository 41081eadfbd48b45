"""COCO box, mask and Boundary AP of a list of COCO result dicts, with a log and a per-category table.

    metrics = evaluate_coco(coco_gt, results, "output/eval", log=logger.info)
    metrics["boundary"]["AP"], metrics["segm"]["evaluate_s"]

Results are COCO result dicts: {"image_id", "category_id" (COCO id), "bbox" [x, y, w, h], "score",
"segmentation" (RLE, str or bytes counts, at the image's full size)}. Every image of `image_ids`
counts, so an image without detections has its ground truth missed. Numbers are COCOeval's: a stat with
no ground truth to score is -1 in the summary and NaN in the per-category table; with no detections at
all every AP and AR is 0 where ground truth exists (what COCOeval reports, evaluated on an empty result
set since COCO.loadRes rejects an empty list).

COCOeval rewrites the ground truth annotations it evaluates in place (polygons become RLE, ignore
flags are added), as it always does.
"""
import contextlib
import io
import os
import time
from collections import Counter

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskrcnn.atomic_files import atomic_write
from .boundary_iou import DEFAULT_DILATION_RATIO, BoundaryCOCOeval

IOU_TYPES = ("bbox", "segm", "boundary")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
PER_CATEGORY_STATS = (("AP", None), ("AP50", 0.5), ("AP75", 0.75))
LOG_FILE = "eval.log"
TABLE_CSV = "per_category_ap.csv"
TABLE_TXT = "per_category_ap.txt"


def check_results(coco_gt, results, image_ids, iou_types):
    """Raise ValueError naming the first result that COCOeval would misread or silently drop."""
    images = {i: coco_gt.imgs[i] for i in image_ids}
    categories = set(coco_gt.getCatIds())
    needed = {"image_id", "category_id", "score"}
    if "bbox" in iou_types:
        needed.add("bbox")
    if {"segm", "boundary"} & set(iou_types):
        needed.add("segmentation")
    for index, result in enumerate(results):
        missing = needed - result.keys()
        if missing:
            raise ValueError(f"result {index} lacks {sorted(missing)} needed for {list(iou_types)}")
        if result["image_id"] not in images:
            raise ValueError(f"result {index}: image_id {result['image_id']} is not among the "
                             f"{len(images)} evaluated images of the annotation file")
        if result["category_id"] not in categories:
            raise ValueError(f"result {index}: category_id {result['category_id']} is not a category of "
                             "the annotation file (results carry COCO category ids)")
        if "segmentation" in needed:
            rle = result["segmentation"]
            if not isinstance(rle, dict) or not {"size", "counts"} <= rle.keys():
                raise ValueError(f"result {index}: segmentation must be an RLE dict with 'size' and 'counts'")
            image = images[result["image_id"]]
            size = list(rle["size"])
            if size != [image["height"], image["width"]]:
                raise ValueError(f"result {index}: segmentation size {size} differs from image "
                                 f"{result['image_id']}'s {[image['height'], image['width']]}")


def load_results(coco_gt, results, iou_type):
    """COCO result dicts -> COCO object of detections, as COCOeval reads them for `iou_type`."""
    if not results:
        empty = COCO()
        empty.dataset = {"images": list(coco_gt.dataset["images"]),
                         "categories": list(coco_gt.dataset["categories"]), "annotations": []}
        empty.createIndex()
        return empty
    if iou_type == "bbox":
        return coco_gt.loadRes([dict(r) for r in results])
    # Without "bbox", loadRes takes a detection's area from its mask, not its box, so that
    # small/medium/large mask AP compare mask areas.
    return coco_gt.loadRes([{k: v for k, v in r.items() if k != "bbox"} for r in results])


def run_cocoeval(coco_gt, coco_dt, iou_type, image_ids, dilation_ratio):
    """-> (accumulated COCOeval, its 12 summary lines, {"evaluate_s", "accumulate_s"})."""
    if iou_type == "boundary":
        evaluator = BoundaryCOCOeval(coco_gt, coco_dt, dilation_ratio)
    else:
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    evaluator.params.imgIds = list(image_ids)
    summary = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        evaluator.evaluate()
        evaluated = time.perf_counter()
        evaluator.accumulate()
        accumulated = time.perf_counter()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    seconds = {"evaluate_s": evaluated - start, "accumulate_s": accumulated - evaluated}
    return evaluator, summary.getvalue().splitlines(), seconds


def per_category_ap(evaluator):
    """Accumulated COCOeval -> {category id: {"AP", "AP50", "AP75"}}, NaN where COCOeval has no data."""
    p = evaluator.params
    precision = evaluator.eval["precision"][:, :, :, p.areaRngLbl.index("all"), -1]  # (T, R, K)
    table = {}
    for k, cat_id in enumerate(p.catIds):
        row = {}
        for name, iou in PER_CATEGORY_STATS:
            values = precision[:, :, k] if iou is None else precision[np.isclose(p.iouThrs, iou), :, k]
            valid = values[values > -1]
            row[name] = float(valid.mean()) if valid.size else float("nan")
        table[cat_id] = row
    return table


def per_category_table(coco_gt, image_ids, per_type_tables):
    """{iou type: per_category_ap(...)} -> DataFrame, one row per category of coco_gt."""
    gt_instances = Counter(a["category_id"] for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=image_ids))
                           if not a.get("iscrowd", 0))
    rows = []
    for category in sorted(coco_gt.dataset["categories"], key=lambda c: c["id"]):
        row = {"category_id": category["id"], "category": category["name"],
               "gt_instances": gt_instances[category["id"]]}
        for iou_type, table in per_type_tables.items():
            row.update({f"{iou_type}_{name}": value for name, value in table[category["id"]].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def write_text(path, text):
    """Write `text` to `path` atomically: `path` is either complete or absent."""
    with atomic_write(path) as f:
        f.write(text)


def evaluate_coco(coco_gt, results, output_dir, iou_types=IOU_TYPES, image_ids=None,
                  dilation_ratio=DEFAULT_DILATION_RATIO, log=print):
    """COCO AP of `results` on `image_ids` (default: every image of coco_gt).

    Returns {iou type: {stat: value for STAT_NAMES} | {"evaluate_s", "accumulate_s"}} and writes
    eval.log (COCOeval's summaries, one block per iou type), per_category_ap.csv and .txt to output_dir.
    """
    unknown = [t for t in iou_types if t not in IOU_TYPES]
    if unknown or not iou_types:
        raise ValueError(f"iou_types {list(iou_types)}: each must be one of {IOU_TYPES}")
    image_ids = sorted(coco_gt.getImgIds()) if image_ids is None else sorted(set(image_ids))
    if not image_ids:
        raise ValueError("no images to evaluate: image_ids and the annotation file's images are empty")
    absent = [i for i in image_ids if i not in coco_gt.imgs]
    if absent:
        raise ValueError(f"{len(absent)} image ids are not in the annotation file, e.g. {absent[:5]}")
    check_results(coco_gt, results, image_ids, iou_types)

    images_with_detections = len({r["image_id"] for r in results})
    lines = [f"{len(results)} detections on {len(image_ids)} images "
             f"({len(image_ids) - images_with_detections} without any detection), "
             f"{len(coco_gt.getCatIds())} categories"]
    log(lines[0])
    metrics, tables = {}, {}
    for iou_type in iou_types:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = load_results(coco_gt, results, iou_type)
        evaluator, summary, seconds = run_cocoeval(coco_gt, coco_dt, iou_type, image_ids, dilation_ratio)
        header = f"Evaluate annotation type *{iou_type}*"
        if iou_type == "boundary":
            header += f" (dilation ratio {dilation_ratio})"
        block = [header, *summary,
                 f"evaluate {seconds['evaluate_s']:.2f}s, accumulate {seconds['accumulate_s']:.2f}s"]
        for line in block:
            log(line)
        lines.extend(block)
        metrics[iou_type] = {**dict(zip(STAT_NAMES, map(float, evaluator.stats))), **seconds}
        tables[iou_type] = per_category_ap(evaluator)

    table = per_category_table(coco_gt, image_ids, tables)
    os.makedirs(output_dir, exist_ok=True)
    write_text(os.path.join(output_dir, TABLE_CSV), table.to_csv(index=False))
    write_text(os.path.join(output_dir, TABLE_TXT),
               table.to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")
    write_text(os.path.join(output_dir, LOG_FILE), "\n".join(lines) + "\n")
    log(f"wrote {LOG_FILE}, {TABLE_CSV} and {TABLE_TXT} to {output_dir}")
    return metrics
