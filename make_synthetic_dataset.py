"""Writes a small synthetic COCO-format instance segmentation dataset (shapes on textured backgrounds).

    python make_synthetic_dataset.py --output data/synthetic [--num_train 400] [--num_val 80]
                                     [--image_size 256] [--seed 0] [--overwrite]

Layout (what convert_coco.py reads with --split train / --split val):
    ROOT/annotations/instances_train.json, ROOT/annotations/instances_val.json
    ROOT/train/000001.jpg ..., ROOT/val/000001.jpg ...
The same arguments give byte-identical files. ROOT is written in a temporary folder beside it and renamed
into place only when complete (output_files.atomic_output_dir).
"""
import argparse
import json
import os
import sys
import time
from collections import Counter

import cv2

from maskrcnn_pointrend.output_files import atomic_output_dir, remove_stale_output_dirs
from tools.synthetic_shapes import CATEGORIES, SyntheticSpec, coco_dataset, synthesize_image

SPLITS = ("train", "val")
JPEG_QUALITY = 95


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--output", required=True, help="dataset root to create")
    parser.add_argument("--num_train", type=int, default=400, help="images in the train split")
    parser.add_argument("--num_val", type=int, default=80, help="images in the val split")
    parser.add_argument("--image_size", type=int, default=SyntheticSpec.image_size,
                        help="longer image side in pixels (the shorter one is 3/4 of it or equal)")
    parser.add_argument("--seed", type=int, default=0, help="non-negative; every image depends on it")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --output")
    args = parser.parse_args(argv)
    for name in ("num_train", "num_val"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.image_size < 96:
        parser.error(f"--image_size must be at least 96, got {args.image_size}")
    if args.seed < 0:
        parser.error(f"--seed must be non-negative, got {args.seed}")
    return args


def write_split(root, split, num_images, spec, seed):
    """Writes ROOT/<split>/*.jpg and ROOT/annotations/instances_<split>.json; returns statistics."""
    os.makedirs(os.path.join(root, split))
    samples = []
    stats = {"images": num_images, "sizes": Counter(), "instances": Counter(), "crowd": 0, "occluded": 0,
             "dropped": Counter()}
    names = {c["id"]: c["name"] for c in CATEGORIES}
    for index in range(num_images):
        sample = synthesize_image(seed, split, index, spec)
        file_name = f"{index + 1:06d}.jpg"
        path = os.path.join(root, split, file_name)
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
    with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as f:
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


def main(argv=None):
    args = parse_args(argv)
    root = os.path.abspath(args.output)
    remove_stale_output_dirs(root)
    if os.path.lexists(root) and not os.path.isdir(root):
        sys.exit(f"error: --output {root} exists and is not a directory")
    if os.path.isdir(root) and os.listdir(root) and not args.overwrite:
        sys.exit(f"error: --output {root} already exists and is not empty; pass --overwrite to replace it")
    spec = SyntheticSpec(image_size=args.image_size)
    start = time.perf_counter()
    with atomic_output_dir(root) as partial:
        os.makedirs(os.path.join(partial, "annotations"))
        for split, num_images in zip(SPLITS, (args.num_train, args.num_val)):
            print(format_stats(split, write_split(partial, split, num_images, spec, args.seed)))
    print(f"wrote {root} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
