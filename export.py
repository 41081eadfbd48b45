#!/usr/bin/env python3
"""Export the PointRend inference network (a converted or trained checkpoint) for a fixed padded input size.

    python export.py --checkpoint_path model.ckpt --file_format MINDIR --output pointrend [--input_size 800 1344]

Inputs of the exported graph: images uint8 (1, 3, H, W), BGR, the image resized as at test time (shorter side
800, longer at most 1333) and zero-padded to H x W; image_size int32 (1, 2), the (h, w) of the resized content.
Outputs: boxes (1, 100, 4) in input pixels, scores (1, 100), classes (1, 100), valid (1, 100), complete (1,),
mask probabilities (1, 100, 224, 224) in the box frame: the raw outputs postprogress.py turns into COCO results
(see its docstring for the per-image file format).

Pad to exactly the canvas you export for: detectron2 (and the eager model) pads to a multiple of 32, and a
larger canvas adds anchors over the padding, which can change which proposals survive. The ROIAlign and point
sampling kernels are custom operators compiled into build/kernels; the MindIR refers to that library by path,
so load it on a machine with the same checkout (`mindspore.load` + `nn.GraphCell`).
"""
import argparse
import logging
import os
import sys

import mindspore as ms
import numpy as np

from maskrcnn_pointrend.checkpoints import CheckpointError
from maskrcnn_pointrend.cli import parse_args, set_context, setup_logging
from maskrcnn_pointrend.data.transforms import padded_size
from maskrcnn_pointrend.model import load_model

logger = logging.getLogger("export")
FILE_FORMATS = ("MINDIR",)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_path", required=True, help="converted or trained .ckpt")
    parser.add_argument("--file_format", default="MINDIR", choices=FILE_FORMATS)
    parser.add_argument("--output", required=True, help="output file name (the extension is added)")
    parser.add_argument("--input_size", type=int, nargs=2, metavar=("H", "W"),
                        help="padded input size (default: the largest test image, padded)")
    args, cfg = parse_args(parser, argv)
    setup_logging()
    set_context(cfg, graph_mode=True)
    height, width = args.input_size or padded_size(cfg.input.max_size_test, cfg.input.max_size_test,
                                                   cfg.input.size_divisibility)
    if height % cfg.input.size_divisibility or width % cfg.input.size_divisibility:
        parser.error(f"--input_size {height} {width}: must be multiples of {cfg.input.size_divisibility}")
    try:
        net, _ = load_model(cfg, args.checkpoint_path)
    except (CheckpointError, ValueError) as e:
        sys.exit(f"export.py: error: {e}")
    images = ms.Tensor(np.zeros((1, 3, height, width), np.uint8))
    image_size = ms.Tensor(np.array([[height, width]], np.int32))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    ms.export(net, images, image_size, file_name=args.output, file_format=args.file_format)
    logger.info("exported %s for %dx%d inputs to %s.%s", args.checkpoint_path, height, width, args.output,
                args.file_format.lower())


if __name__ == "__main__":
    main()
