"""A model run over an image source for evaluation: raw detections -> COCO results per image, raw outputs saved
on request, time per stage, and the decoded images the overlays need."""
import os
import time
from typing import NamedTuple

from ..image_names import overlay_names
from ..progress import progress_bar
from ..raw_detections import save_raw
from ..visualize import save_results_overlay
from .ground_truth import raw_to_results
from .report import StageTimer


class ModelRun(NamedTuple):
    results: list                  # COCO result dicts
    evaluated: list                # image ids in the order run
    timer: StageTimer              # read_preprocess, network, paste_encode[, save_raw] seconds
    loop_seconds: float
    first_network_seconds: float   # the first image's, compilation included
    originals: dict                # {image_id: (H0, W0, 3) BGR} of the images asked for


def timed(iterable, timer, stage):
    """Yield from `iterable`, adding the time each item takes to produce to `timer`'s `stage`."""
    iterator = iter(iterable)
    while True:
        with timer(stage):
            item = next(iterator, None)
        if item is None:
            return
        yield item


def run_model(predictor, source, coco_gt, category_ids, raw_dir=None, keep_ids=()):
    """Run `predictor` on every image of `source` (image_sources) -> ModelRun; raw outputs go to raw_dir, the
    decoded images of keep_ids are kept."""
    timer = StageTimer()
    keep_ids = set(keep_ids)
    results, evaluated, originals, first_network_seconds = [], [], {}, None
    start = time.perf_counter()
    with progress_bar(len(source.images), "eval", "img") as bar:
        for image in timed(source.read(predictor, keep_ids.__contains__), timer, "read_preprocess"):
            with timer("network"):
                raw = predictor.predict_preprocessed(image.padded, image.image_size, image.original_size,
                                                     image.image_id)
            if first_network_seconds is None:
                first_network_seconds = timer.seconds["network"]
            with timer("paste_encode"):
                results += raw_to_results(raw, coco_gt, category_ids, image.source)
            if raw_dir:
                with timer("save_raw"):
                    save_raw(raw, raw_dir)
            if image.original is not None:
                originals[image.image_id] = image.original
            evaluated.append(image.image_id)
            bar.update()
    return ModelRun(results, evaluated, timer, time.perf_counter() - start, first_network_seconds, originals)


def write_overlays(folder, originals, results, coco_gt, categories, score_thresh):
    """One PNG per image of `originals` ({image_id: (H, W, 3) BGR}), named after its file (image_names), in
    `folder`."""
    ids = list(originals)
    names = overlay_names([coco_gt.imgs[image_id]["file_name"] for image_id in ids], ids)
    for image_id, name in zip(ids, names):
        save_results_overlay(os.path.join(folder, name), originals[image_id],
                             [r for r in results if r["image_id"] == image_id], categories, score_thresh)
