#!/usr/bin/env python3
"""Convert a detectron2, MindSpore Model Zoo or torchvision checkpoint into our .ckpt: our parameter names and
layouts, plus metadata (input format, pixel mean/std, ResNet block style, num_classes) that eval.py,
infer.py and train.py apply to the config.

    python convert_checkpoint.py --source detectron2 --input model_final.pkl --output pointrend_r50.ckpt

--source detectron2     .pkl or .pth: PointRend R50-FPN (current or pre-Nov-2020 names); Mask R-CNN
                        R50-FPN (its mask head is dropped, the PointRend heads start fresh); ImageNet
                        backbones such as R-50.pkl (caffe2 names)
--source mindspore_zoo  the Model Zoo's Mask R-CNN R50-FPN .ckpt (its mask head is dropped), or its
                        ImageNet ResNet-50 .ckpt
--source torchvision    torchvision's ImageNet resnet50 .pth (backbone only)

--categories FILE       a json holding COCO's "categories" list (e.g. the annotation file the model was
                        trained on): recorded in the converted file, for a model of other than COCO's 80
                        classes, so that infer.py names its classes (eval.py takes an annotation file's)

Pickled files are read without torch and without running any code they name. The conversion stops with
an error listing any tensor it cannot place, and writes nothing then; so does a --categories file whose
count differs from the checkpoint's classes, or an --output that cannot be written (checked first).
"""
import argparse
import json
import os
import sys
import time

from maskrcnn_pointrend.categories import category_pairs, model_categories, read_categories_file
from maskrcnn_pointrend.checkpoints import (CheckpointError, convert_detectron2, convert_mindspore_zoo,
                                            convert_torchvision, load_pickled_checkpoint, read_checkpoint,
                                            save_checkpoint)
from maskrcnn_pointrend.checkpoints.ckpt_io import group_counts
from maskrcnn_pointrend.output_files import check_output_file

# Dropped names are listed one by one up to this many per reason, else counted with a few examples.
MAX_LISTED_NAMES = 8


def _read_mindspore_params(path):
    return read_checkpoint(path)[0]


SOURCES = {
    "detectron2": (load_pickled_checkpoint, convert_detectron2),
    "mindspore_zoo": (_read_mindspore_params, convert_mindspore_zoo),
    "torchvision": (load_pickled_checkpoint, convert_torchvision),
}


def _names(names):
    if len(names) <= MAX_LISTED_NAMES:
        return ", ".join(names)
    return ", ".join(names[:3]) + f", ... ({len(names) - 3} more)"


def record_categories(converted, given, source):
    """Store `given` (GivenCategories) in the metadata of `converted`, checked against its classes."""
    if "num_classes" not in converted.metadata:
        raise CheckpointError(f"{source} has no box classifier (a backbone): --categories does not apply")
    categories = model_categories(converted.metadata, converted.metadata["num_classes"], source, given)
    converted.metadata["categories"] = category_pairs(categories)


def report_lines(converted, args, seconds):
    params = converted.params
    lines = [f"{args.input} ({args.source}) -> {args.output}: {len(params)} tensors, "
             f"{sum(v.size for v in params.values())} values, {seconds:.1f} s",
             f"  converted: {group_counts(params)}"]
    lines += [f"  dropped {len(names)} ({reason}): {_names(names)}" for reason, names in converted.dropped.items()]
    lines += [f"  note: {note}" for note in converted.notes]
    lines.append(f"  metadata: {json.dumps(converted.metadata, sort_keys=True)}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, choices=sorted(SOURCES), help="where the checkpoint is from")
    parser.add_argument("--input", required=True, help="checkpoint to convert (.pkl, .pth or .ckpt)")
    parser.add_argument("--output", required=True, help="converted checkpoint to write (.ckpt)")
    parser.add_argument("--categories", metavar="FILE", help="json with COCO's categories list, in the "
                        "checkpoint's class order once sorted by id")
    args = parser.parse_args(argv)
    if not args.output.endswith(".ckpt"):
        parser.error(f"--output {args.output}: must end in .ckpt")
    start = time.perf_counter()
    read, convert = SOURCES[args.source]
    try:
        check_output_file(args.output, "--output")
        given = read_categories_file(args.categories) if args.categories else None
        converted = convert(read(args.input), args.input)
        if given:
            record_categories(converted, given, args.input)
        converted.metadata["converted_from"] = os.path.basename(args.input)
        save_checkpoint(args.output, converted.params, converted.metadata)
    except (ValueError, OSError) as e:  # CheckpointError, CategoryError, AnnotationFileError, OutputLocationError
        sys.exit(f"convert_checkpoint.py: error: {e}")
    print("\n".join(report_lines(converted, args, time.perf_counter() - start)))


if __name__ == "__main__":
    main()
