#!/usr/bin/env python3
"""One script for every speed and memory figure of the README: the median of N timed runs after a warm-up,
with a per-stage split, compilation separately, peak host RSS and (on GPU) peak device memory.

    python benchmark.py --what infer --checkpoint CKPT --image IMG [--json OUT]
    python benchmark.py --what train --checkpoint CKPT [--json OUT]
    python benchmark.py --what convert --coco_root R [--split train2017] [--json OUT]
    python benchmark.py --what eval --checkpoint CKPT --coco_root R [--json OUT]

infer    one image at the test resize (the parity image ../shared/parity/coco_397133_800.png is 800x1199):
         backbone+FPN, RPN, box head (with detection selection), mask head, paste (pasting + RLE encoding);
         each stage compiled per input shape (the compilation is the warm-up's extra time), with its FLOPs
         (maskrcnn_pointrend/flop_count.py: convolutions and matrix products) and the GFLOP/s it reached.
train    one training iteration (forward + backward + SGD update) on 2 images of 512x512 with 3 instances each,
         as detectron2's reference figure, from CKPT's weights (the seed-0 parity weights give sane features):
         data time (the step's inputs), step; the first iteration compiles the graph. With --profile DIR, one
         more iteration under MindSpore's profiler (written to DIR) gives the step's split by operator kind.
convert  COCO -> MindRecord of a split with 2 workers: images/s, MindRecord bytes / JPEG bytes.
eval     eval.py over a split: images/s, split between network, pasting and COCOeval per IoU type, and the
         time Boundary AP adds.
Times are the median, min and max of --runs timed runs (5) after the warm-up. Any other --key=value is a config
override (e.g. --device_target=GPU).
"""
import argparse
import csv
import glob
import json
import logging
import os
import resource
import statistics
import tempfile
import time

import mindspore as ms
import numpy as np

from maskrcnn_pointrend.cli import parse_args, set_context, setup_logging

logger = logging.getLogger("benchmark")


def peak_memory():
    """Peak host RSS of this process (MB), and peak device memory (MB) on GPU."""
    figures = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if ms.get_context("device_target") == "GPU":
        figures["peak_device_mb"] = round(ms.runtime.max_memory_allocated() / 2 ** 20, 1)
    return figures


def summary(values):
    """Seconds of the timed runs -> {median, min, max}."""
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def stage_summaries(runs):
    """[{stage: seconds}] -> {stage: summary}."""
    return {name: summary([run[name] for run in runs]) for name in runs[0]}


def timed(run, num_runs):
    """The warm-up run's seconds and num_runs more runs' [(seconds, {stage: seconds}, ...)]."""
    first = run()[0]
    return first, [run() for _ in range(num_runs)]


def benchmark_infer(args, cfg):
    from maskrcnn_pointrend.data.transforms import read_image_bgr
    from maskrcnn_pointrend.flop_count import inference_flops
    from maskrcnn_pointrend.model import load_model
    from maskrcnn_pointrend.predictor import Predictor
    from maskrcnn_pointrend.raw_detections import coco_results

    net, categories = load_model(cfg, args.checkpoint)
    predictor = Predictor(net, cfg)
    image = read_image_bgr(args.image)
    category_ids = [c[0] for c in categories]

    def run():
        start = time.perf_counter()
        raw = predictor(image, 0)
        paste_start = time.perf_counter()
        coco_results(raw, category_ids)
        end = time.perf_counter()
        stages = {"backbone+fpn": predictor.stage_seconds["backbone"], "rpn": predictor.stage_seconds["rpn"],
                  "box_head": predictor.stage_seconds["box_head"], "mask_head": predictor.stage_seconds["mask_head"],
                  "paste": end - paste_start}
        return end - start, stages, len(raw.scores)

    first, runs = timed(run, args.runs)
    total = summary([r[0] for r in runs])
    padded, size = predictor.preprocess(image)
    stages = stage_summaries([r[1] for r in runs])
    flops = inference_flops(net, padded.shape[1], padded.shape[2], cfg.model.rpn.post_nms_topk_test,
                            cfg.model.roi_heads.detections_per_image)
    for name, count in flops.items():
        stages[name].update(gflop=round(count / 1e9, 1), gflop_per_s=round(count / 1e9 / stages[name]["median"], 1))
    return {"seconds": total, "stages": stages, "gflop": round(sum(flops.values()) / 1e9, 1),
            "first_run_s": round(first, 3), "compile_s": round(first - total["median"], 3),
            "detections": runs[-1][2],
            "input": f"{args.image} ({size[0]}x{size[1]}, padded {padded.shape[1]}x{padded.shape[2]})"}


def training_batch(rng, num_images, canvas, cfg):
    """A fixed training batch like detectron2's reference measurement: images of `canvas` with 3 instances
    each (random boxes, each mask a filled ellipse in its grid), as the train pipeline delivers them."""
    from maskrcnn_pointrend.data.gt_masks import GRID_SCALE, mask_frame

    height, width = canvas
    slots, grid = cfg.input.max_instances, cfg.input.mask_grid
    boxes = np.zeros((num_images, slots, 4), np.float32)
    for i in range(num_images):
        corner = rng.uniform(0, min(height, width) / 2, (3, 2))
        boxes[i, :3] = np.concatenate([corner, corner + rng.uniform(40, min(height, width) / 2, (3, 2))], 1)
    yy, xx = np.mgrid[:grid, :grid]
    ellipse = ((yy - grid / 2 + 0.5) ** 2 + (xx - grid / 2 + 0.5) ** 2 <= (grid / 2) ** 2).astype(np.uint8)
    masks = np.zeros((num_images, slots, grid, grid), np.uint8)
    masks[:, :3] = ellipse * GRID_SCALE
    frames = np.zeros((num_images, slots, 4), np.float32)
    frames[:, :3] = [[mask_frame(box) for box in image_boxes[:3]] for image_boxes in boxes]
    valid = np.zeros((num_images, slots), np.float32)
    valid[:, :3] = 1
    classes = np.zeros((num_images, slots), np.int32)
    classes[:, :3] = rng.integers(0, cfg.model.num_classes, (num_images, 3))
    images = rng.integers(0, 256, (num_images, 3, height, width), dtype=np.uint8)
    return images, np.full((num_images, 2), canvas, np.int32), boxes, classes, valid, masks, frames


def benchmark_train(args, cfg):
    from maskrcnn_pointrend.checkpoints import config_overrides_from_metadata, read_checkpoint
    from maskrcnn_pointrend.engine.pretrained import load_pretrained
    from maskrcnn_pointrend.engine.solver import build_optimizer
    from maskrcnn_pointrend.engine.train_step import TrainStep, loss_inputs, step_randomness
    from maskrcnn_pointrend.model import LOSS_NAMES, build_pointrend

    num_images, canvas = 2, (512, 512)
    params, metadata = read_checkpoint(args.checkpoint)
    cfg = cfg.merged(config_overrides_from_metadata(metadata))
    net = build_pointrend(cfg)
    load_pretrained(net, params, args.checkpoint, cfg.model.num_classes, logger)
    net.set_train(True)
    step = TrainStep(net, build_optimizer(net, cfg.solver), LOSS_NAMES)
    batch = training_batch(np.random.default_rng(cfg.seed), num_images, canvas, cfg)

    iterations = iter(range(args.runs + 2))

    def run():
        iteration = next(iterations)
        start = time.perf_counter()
        inputs = loss_inputs(batch, step_randomness(net, cfg.seed, iteration, 0, num_images, canvas,
                                                    cfg.input.max_instances))
        data_end = time.perf_counter()
        step(iteration, inputs, 1e-4)
        end = time.perf_counter()
        return end - start, {"data": data_end - start, "step": end - data_end}

    first, runs = timed(run, args.runs)
    total = summary([r[0] for r in runs])
    figures = {"seconds": total, "stages": stage_summaries([r[1] for r in runs]), "first_run_s": round(first, 3),
               "compile_s": round(first - total["median"], 3),
               "input": f"{num_images} images {canvas[0]}x{canvas[1]}, 3 instances each, seed-0 weights"}
    if args.profile:
        profiler = ms.Profiler(output_path=args.profile)
        run()
        profiler.stop()
        profiler.analyse()
        figures["profiled_split_s"] = operator_split(args.profile)
    return figures


OPERATOR_KINDS = {"Conv2D": "convolution forward", "Conv2DBackpropInput": "convolution backward",
                  "Conv2DBackpropFilter": "convolution backward", "MatMul": "matrix products",
                  "BatchMatMul": "matrix products", "Custom": "custom kernels (ROIAlign, point sampling, NMS)"}


def operator_split(folder):
    """{operator kind: seconds} of the profiled iteration, from MindSpore's CPU operator table in `folder` (the
    profiler's own timing: its total exceeds the unprofiled step's)."""
    table = glob.glob(os.path.join(folder, "*", "FRAMEWORK", "cpu_op_type_info_*.csv"))
    if not table:
        raise RuntimeError(f"no MindSpore CPU operator table (cpu_op_type_info_*.csv) under {folder}")
    split = {}
    with open(table[0]) as f:
        for row in csv.DictReader(f):
            kind = OPERATOR_KINDS.get(row["op_type"], "elementwise and the rest")
            split[kind] = split.get(kind, 0.0) + float(row["total_compute_time"]) / 1000
    return {kind: round(seconds, 3) for kind, seconds in sorted(split.items(), key=lambda item: -item[1])}


def benchmark_convert(args, cfg):
    from maskrcnn_pointrend.data.coco_layout import annotation_path, image_dir
    from maskrcnn_pointrend.data.mindrecord_writer import convert_coco

    split = args.split or cfg.train_split
    ann_file = annotation_path(args.coco_root, split)
    images = image_dir(args.coco_root, split)

    def run():
        with tempfile.TemporaryDirectory() as folder:
            output = os.path.join(folder, "mindrecord")
            start = time.perf_counter()
            result = convert_coco(ann_file, images, output, shards=1, workers=2)
            seconds = time.perf_counter() - start
            record_bytes = sum(os.path.getsize(os.path.join(output, n)) for n in os.listdir(output))
        return seconds, result["images"]["converted"], record_bytes

    runs = [run() for _ in range(args.runs)]
    seconds = summary([r[0] for r in runs])
    _, converted, record_bytes = runs[-1]
    jpeg_bytes = sum(os.path.getsize(os.path.join(images, n)) for n in os.listdir(images))
    return {"seconds": seconds, "images": converted, "images_per_s": round(converted / seconds["median"], 1),
            "mindrecord_bytes": record_bytes, "jpeg_bytes": jpeg_bytes,
            "size_ratio": round(record_bytes / jpeg_bytes, 3), "input": f"{args.coco_root} {split}, 2 workers"}


def benchmark_eval(args, cfg):
    import eval as eval_script

    with tempfile.TemporaryDirectory() as folder:
        eval_script.main(["--checkpoint_path", args.checkpoint, "--coco_root", args.coco_root,
                          "--output_dir", folder] + args.overrides)
        with open(os.path.join(folder, "timing.json")) as f:
            timing = json.load(f)
    cocoeval = timing["cocoeval_s"]
    return {"loop_s": timing["loop_s"], "images": timing["images"], "images_per_s": timing["images_per_s"],
            "stages": {**timing["stages_s"], **{f"cocoeval_{k}": v for k, v in cocoeval.items()}},
            "boundary_ap_added_s": round(cocoeval["boundary"] - cocoeval["segm"], 3),
            "compilations": timing["compilations"], "compile_s": timing["compile_s"],
            "per_image_s_without_compiling": round((timing["stages_s"]["network"] - timing["compile_s"])
                                                   / timing["images"], 3),
            "input": f"{args.coco_root} {cfg.val_split}"}


BENCHMARKS = {"infer": benchmark_infer, "train": benchmark_train, "convert": benchmark_convert,
              "eval": benchmark_eval}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--what", required=True, choices=sorted(BENCHMARKS))
    parser.add_argument("--checkpoint", help="converted or trained .ckpt (infer, train, eval)")
    parser.add_argument("--image", help="image to run (infer)")
    parser.add_argument("--coco_root", help="COCO-layout dataset (convert, eval)")
    parser.add_argument("--split", help="split to convert (default: the config's train_split)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after the warm-up")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--profile", help="train: profile one more iteration into this folder (operator split)")
    args, cfg = parse_args(parser, argv)
    args.overrides = parser.parse_known_args(argv)[1]  # config overrides, passed on to eval.py
    needed = {"infer": ("checkpoint", "image"), "train": ("checkpoint",), "eval": ("checkpoint", "coco_root"),
              "convert": ("coco_root",)}
    missing = [name for name in needed.get(args.what, ()) if getattr(args, name) is None]
    if missing:
        parser.error(f"--what {args.what} needs " + ", ".join(f"--{name}" for name in missing))
    setup_logging()
    set_context(cfg)
    figures = {"what": args.what, **BENCHMARKS[args.what](args, cfg), "device": cfg.device_target,
               **peak_memory()}
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
