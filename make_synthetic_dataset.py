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
import os
import sys
import time

from maskrcnn_pointrend.output_files import atomic_output_dir, remove_stale_output_dirs
from tools.synthetic_shapes import SyntheticSpec, format_stats, write_split

SPLITS = ("train", "val")


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
        for split, num_images in zip(SPLITS, (args.num_train, args.num_val)):
            print(format_stats(split, write_split(partial, split, num_images, spec, args.seed)))
    print(f"wrote {root} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
