"""What an evaluation writes (eval.py, postprogress.py): the results json, COCOeval's logs and tables, metrics and
the time spent per stage."""
import contextlib
import json
import os
import time
from collections import defaultdict

from .coco_evaluation import evaluate_coco, write_text

RESULTS_FILE = "results_segm_bbox.json"
TIMING_FILE = "timing.json"
METRICS_FILE = "metrics.json"


class StageTimer:
    """Seconds spent per named stage, summed over images: `with timer("network"): ...`."""

    def __init__(self):
        self.seconds = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def timing_summary(images, loop_seconds, stage_seconds, metrics):
    """-> the timing.json dict: images/s over the loop that produced the results, seconds per stage, and
    COCOeval's evaluate + accumulate seconds per IoU type."""
    return {
        "images": images,
        "loop_s": loop_seconds,
        "images_per_s": images / loop_seconds if loop_seconds > 0 else None,
        "stages_s": dict(stage_seconds),
        "cocoeval_s": {t: m["evaluate_s"] + m["accumulate_s"] for t, m in metrics.items()},
    }


def timing_lines(timing):
    """The timing summary as log lines."""
    stages = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in timing["stages_s"].items())
    cocoeval = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in timing["cocoeval_s"].items())
    rate = timing["images_per_s"]
    return [f"{timing['images']} images in {timing['loop_s']:.2f}s ({rate:.3f} images/s): {stages}",
            f"COCOeval (evaluate + accumulate): {cocoeval}"]


def write_evaluation(coco_gt, results, output_dir, images, loop_seconds, stage_seconds, log, extra_timing=None):
    """Write the results json (in the annotation file's image order, however the images were run),
    evaluate_coco's eval.log and tables, metrics.json (the 12 COCO statistics per IoU type, as fractions) and
    timing.json (with `extra_timing` merged in) to output_dir -> (metrics, timing)."""
    order = {image["id"]: index for index, image in enumerate(coco_gt.dataset["images"])}
    results = sorted(results, key=lambda result: order[result["image_id"]])
    os.makedirs(output_dir, exist_ok=True)
    results_path = os.path.join(output_dir, RESULTS_FILE)
    write_text(results_path, json.dumps(results))
    log(f"wrote {len(results)} detections for {images} images to {results_path}")
    metrics = evaluate_coco(coco_gt, results, output_dir, log=log)
    statistics = {iou_type: {k: v for k, v in values.items() if not k.endswith("_s")}
                  for iou_type, values in metrics.items()}
    write_text(os.path.join(output_dir, METRICS_FILE), json.dumps(statistics, indent=2) + "\n")
    timing = {**timing_summary(images, loop_seconds, stage_seconds, metrics), **(extra_timing or {})}
    write_text(os.path.join(output_dir, TIMING_FILE), json.dumps(timing, indent=2) + "\n")
    for line in timing_lines(timing):
        log(line)
    return metrics, timing
