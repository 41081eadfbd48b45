"""Running a model on images: checkpoint -> network, image -> raw detections -> COCO results.

Raw detections are the network's outputs for one image, before pasting, in the format postprogress.py reads
(one `<image_id>.npz` per image, see `save_raw`): boxes in network-input pixels, scores, classes, box-frame
mask probabilities, and the image's meta (id, original size, network-input size, scale).
"""
import logging
import os
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from pycocotools import mask as mask_util

from maskrcnn.postprocess import paste_mask, rescale_detections

from .checkpoints import config_overrides_from_metadata, load_into_network, read_checkpoint
from .data.coco_categories import COCO_CATEGORIES
from .data.transforms import padded_size, preprocess_for_inference, resize_shortest_edge_shape
from .model import build_pointrend

logger = logging.getLogger(__name__)

RAW_FIELDS = ("image_id", "original_size", "image_size", "scale", "boxes", "scores", "classes", "mask_probs")


@dataclass
class RawDetections:
    """One image's detections as the network returns them (valid ones only, by descending score)."""
    image_id: int
    original_size: tuple  # (H0, W0) of the image as read
    image_size: tuple  # (h, w) of the resized image the network saw
    boxes: np.ndarray  # (D, 4) float32 XYXY in network-input pixels
    scores: np.ndarray  # (D,) float32
    classes: np.ndarray  # (D,) int32 contiguous class indices
    mask_probs: np.ndarray  # (D, S, S) float32 mask probabilities in the box frame

    @property
    def scale(self):
        """(sx, sy): network-input pixels per original pixel."""
        return self.image_size[1] / self.original_size[1], self.image_size[0] / self.original_size[0]


def save_raw(raw, directory):
    """Write `<directory>/<image_id>.npz` (fields RAW_FIELDS; sizes as (h, w), scale as (sx, sy)) atomically."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{raw.image_id}.npz")
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz.tmp", delete=False) as f:
        np.savez_compressed(f, image_id=raw.image_id, original_size=raw.original_size, image_size=raw.image_size,
                            scale=raw.scale, boxes=raw.boxes, scores=raw.scores, classes=raw.classes,
                            mask_probs=raw.mask_probs)
    os.replace(f.name, path)
    return path


def load_raw(path):
    """RawDetections from a file written by save_raw (or any runtime writing the same fields)."""
    try:
        with np.load(path) as data:
            missing = [name for name in RAW_FIELDS if name not in data]
            if missing:
                raise ValueError(f"{path}: raw detections lack {', '.join(missing)}")
            raw = RawDetections(int(data["image_id"]), tuple(int(v) for v in data["original_size"]),
                                tuple(int(v) for v in data["image_size"]), data["boxes"].astype(np.float32),
                                data["scores"].astype(np.float32), data["classes"].astype(np.int32),
                                data["mask_probs"].astype(np.float32))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"cannot read raw detections {path}: {e}") from None
    count = len(raw.scores)
    if not (raw.boxes.shape == (count, 4) and len(raw.classes) == count and len(raw.mask_probs) == count):
        raise ValueError(f"{path}: boxes {raw.boxes.shape}, scores {raw.scores.shape}, classes "
                         f"{raw.classes.shape} and mask_probs {raw.mask_probs.shape} disagree on the count")
    return raw


def raw_from_outputs(outputs, image_id, original_size, image_size):
    """RawDetections of one image from the network's numpy outputs for it (boxes (D, 4), scores (D,), classes
    (D,), valid (D,), complete, mask probabilities (D, S, S)), as any runtime of the exported model returns them."""
    boxes, scores, classes, valid, _, mask_probs = outputs
    valid = np.asarray(valid, bool)
    return RawDetections(int(image_id), tuple(int(v) for v in original_size), tuple(int(v) for v in image_size),
                         np.asarray(boxes, np.float32)[valid], np.asarray(scores, np.float32)[valid],
                         np.asarray(classes)[valid].astype(np.int32), np.asarray(mask_probs, np.float32)[valid])


def coco_results(raw, category_ids, mask_threshold=0.5):
    """COCO result dicts for one image: boxes rescaled to the original image (XYWH), masks pasted there and
    RLE-encoded (str counts); detections whose box becomes empty are dropped, as detectron2 does."""
    boxes, nonempty = rescale_detections(raw.boxes, raw.image_size, raw.original_size)
    results = []
    for i in np.flatnonzero(nonempty):
        mask = paste_mask(raw.mask_probs[i], boxes[i], raw.original_size, mask_threshold)
        rle = mask_util.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        results.append({"image_id": raw.image_id, "category_id": int(category_ids[raw.classes[i]]),
                        "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(raw.scores[i]), "segmentation": rle})
    return results


def checkpoint_categories(metadata, num_classes, path):
    """[(category id, name)] in class-index order: the checkpoint's own, else COCO's for 80-class models."""
    if "categories" in metadata:
        categories = [tuple(c) for c in metadata["categories"]]
    elif num_classes == len(COCO_CATEGORIES):
        categories = list(COCO_CATEGORIES)
    else:
        raise ValueError(f"{path} predicts {num_classes} classes but names no categories")
    if len(categories) != num_classes:
        raise ValueError(f"{path} names {len(categories)} categories for {num_classes} classes")
    return categories


def load_model(cfg, checkpoint_path):
    """(network in inference mode, cfg with the checkpoint's input conventions, categories) for a checkpoint
    that holds every tensor of the model (a partial one is an error naming what is missing)."""
    params, metadata = read_checkpoint(checkpoint_path)
    cfg = cfg.merged(config_overrides_from_metadata(metadata))
    net = build_pointrend(cfg)
    load_into_network(net, params, strict=True, log=logger)
    net.set_train(False)
    return net, cfg, checkpoint_categories(metadata, cfg.model.num_classes, checkpoint_path)


class Predictor:
    """image (H, W, 3) uint8 BGR -> RawDetections, with the test-time resize and padding of `cfg.input`.

    The network runs as four stages (backbone + FPN, RPN, box head with detection selection, mask head), each
    compiled with ms.jit for every new input shape when cfg.test.compile_stages (graph execution is about three
    times as fast on the CPU; each new padded image shape costs a compilation), else op by op. The graphs of at
    most cfg.test.max_compiled_shapes shapes are kept (each holds ~1 GB for R50-FPN at 800 x 1333): a new shape
    beyond that releases them all (ms.ms_memory_recycle, which drops every compiled graph of the process), so
    feed images grouped by `input_shape` where it matters. `stage_seconds` holds the last image's time per stage.
    """

    STAGES = ("backbone", "rpn", "box_head", "mask_head")

    def __init__(self, net, cfg):
        self.cfg = cfg
        self.complete_hint = (f"model.nms_rounds ({cfg.model.nms_rounds}) or model.roi_heads.nms_candidates_test "
                              f"({cfg.model.roi_heads.nms_candidates_test})")

        def proposals(features, image_size):
            boxes, valid, converged, _ = net.proposal_generator(features, image_size)
            return boxes, valid, converged

        functions = (net.features, proposals, net.roi_heads.detect, net.roi_heads.mask_head)
        compile_stage = ms.jit if cfg.test.compile_stages else (lambda function: function)
        self.stages = dict(zip(self.STAGES, (compile_stage(f) for f in functions)))
        self.stage_seconds = {}
        self.compiled_shapes = set()

    def input_shape(self, height, width):
        """(Hp, Wp) the network takes an image of height x width as (resized, then padded)."""
        cfg = self.cfg.input
        return padded_size(*resize_shortest_edge_shape(height, width, cfg.min_size_test, cfg.max_size_test),
                           cfg.size_divisibility)

    def _track_compiled(self, shape):
        """Counts (Hp, Wp) as compiled, first releasing every compiled graph when the limit is reached."""
        if not self.cfg.test.compile_stages or shape in self.compiled_shapes:
            return
        if len(self.compiled_shapes) >= self.cfg.test.max_compiled_shapes:
            ms.ms_memory_recycle()
            self.compiled_shapes.clear()
        self.compiled_shapes.add(shape)

    def _run(self, name, *args):
        start = time.perf_counter()
        outputs = self.stages[name](*args)
        # Wait for the (asynchronous) computation: on the CPU asnumpy is a view, not a copy (and synchronize does
        # not wait there); on a GPU it would copy every feature map to the host.
        if ms.get_context("device_target") == "CPU":
            for tensor in outputs if isinstance(outputs, tuple) else (outputs,):
                tensor.asnumpy()
        else:
            ms.runtime.synchronize()
        self.stage_seconds[name] = time.perf_counter() - start
        return outputs

    def preprocess(self, image):
        """-> ((3, Hp, Wp) uint8 zero-padded, (h, w) after resize) as the network takes them."""
        cfg = self.cfg.input
        padded, size, _ = preprocess_for_inference(image, cfg.min_size_test, cfg.max_size_test,
                                                   cfg.size_divisibility)
        return padded, size

    def predict_preprocessed(self, padded, image_size, original_size, image_id):
        """RawDetections for one image already resized and padded (e.g. by the MindRecord test pipeline)."""
        self._track_compiled(padded.shape[1:])
        images, sizes = ms.Tensor(padded[None]), ms.Tensor(np.array([image_size], np.int32))
        # A tuple of tensors passed to a compiled stage is taken as a constant (recompiling on every new value)
        # unless marked mutable.
        features = ms.mutable(self._run("backbone", images, sizes))
        proposals, proposal_valid, rpn_converged = self._run("rpn", features, sizes)
        boxes, scores, classes, valid, complete = self._run("box_head", features, proposals, proposal_valid, sizes)
        mask_probs = self._run("mask_head", features, boxes, classes, valid)
        if not (complete.asnumpy()[0] and rpn_converged.asnumpy()[0]):
            logger.warning("image %s: a fixed-size selection step may have cut the exact result short; raise %s",
                           image_id, self.complete_hint)
        outputs = [o.asnumpy()[0] for o in (boxes, scores, classes, valid, complete, mask_probs)]
        return raw_from_outputs(outputs, image_id, original_size, image_size)

    def __call__(self, image, image_id):
        padded, image_size = self.preprocess(image)
        return self.predict_preprocessed(padded, image_size, image.shape[:2], image_id)
