"""Running a model on images: image -> raw detections (see raw_detections.py), stage by stage."""
import logging
import time

import mindspore as ms
import numpy as np

from .data.transforms import InferenceInput
from .raw_detections import raw_from_outputs

logger = logging.getLogger(__name__)


class Predictor:
    """image (H, W, 3) uint8 BGR -> RawDetections, with the test-time resize and padding of `cfg.input`.

    The network runs as four stages (backbone + FPN, RPN, box head with detection selection, mask head), each
    compiled with ms.jit for every new input shape when cfg.test.compile_stages (graph execution is about three
    times as fast on the CPU), else op by op. Images are padded to cfg.input.test_canvases, so there is one input
    shape per canvas (without canvases, one per padded image size). The graphs of at most
    cfg.test.max_compiled_shapes shapes are kept (each holds ~3.2 GB for R50-FPN at 800 x 1344): a new shape beyond
    that releases them all (ms.ms_memory_recycle, which drops every compiled graph of the process), so feed images
    grouped by `input_shape` where it matters. `stage_seconds` holds the last image's time per stage.
    """

    STAGES = ("backbone", "rpn", "box_head", "mask_head")

    def __init__(self, net, cfg):
        self.cfg = cfg
        self.complete_hint = (f"model.rpn.nms_rounds ({cfg.model.rpn.nms_rounds}), model.roi_heads.nms_rounds "
                              f"({cfg.model.roi_heads.nms_rounds}) or model.roi_heads.nms_candidates_test "
                              f"({cfg.model.roi_heads.nms_candidates_test})")

        def proposals(features, image_size):
            boxes, _, valid, converged, _ = net.proposal_generator(features, image_size, net.padded_size(image_size))
            return boxes, valid, converged

        def detections(features, proposals, valid, image_size):
            return net.roi_heads.detect(features, proposals, valid, image_size, net.padded_size(image_size))

        self.inference_input = InferenceInput.from_config(cfg.input)
        functions = (net.features, proposals, detections, net.roi_heads.mask_head)
        compile_stage = ms.jit if cfg.test.compile_stages else (lambda function: function)
        self.stages = dict(zip(self.STAGES, (compile_stage(f) for f in functions)))
        self.stage_seconds = {}
        self.compiled_shapes = set()
        self.history = []  # per image run: (input shape, network seconds, whether it compiled the stages first)

    def input_shape(self, height, width):
        """(Hp, Wp) the network takes an image of height x width as (resized, then padded)."""
        return self.inference_input.shape(height, width)

    def _track_compiled(self, shape):
        """Counts (Hp, Wp) as compiled, first releasing every compiled graph when the limit is reached -> whether
        the stages compile for it now."""
        if not self.cfg.test.compile_stages or shape in self.compiled_shapes:
            return False
        if len(self.compiled_shapes) >= self.cfg.test.max_compiled_shapes:
            ms.ms_memory_recycle()
            self.compiled_shapes.clear()
        self.compiled_shapes.add(shape)
        return True

    def compile_report(self):
        """{"compilations": how many times the stages were compiled, "compile_s": the seconds that took, estimated
        as each compiling run's time beyond the median run of its shape that did not compile}."""
        seconds = 0.0
        for shape, run_seconds, compiled in self.history:
            if compiled:
                others = [s for other, s, c in self.history if other == shape and not c]
                seconds += run_seconds - (float(np.median(others)) if others else 0.0)
        return {"compilations": sum(c for _, _, c in self.history), "compile_s": round(seconds, 3)}

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
        return self.inference_input(image)

    def predict_preprocessed(self, padded, image_size, original_size, image_id):
        """RawDetections for one image already resized and padded (e.g. by the MindRecord test pipeline)."""
        compiles = self._track_compiled(padded.shape[1:])
        images, sizes = ms.Tensor(padded[None]), ms.Tensor(np.array([image_size], np.int32))
        # A tuple of tensors passed to a compiled stage is taken as a constant (recompiling on every new value)
        # unless marked mutable.
        features = ms.mutable(self._run("backbone", images, sizes))
        proposals, proposal_valid, rpn_converged = self._run("rpn", features, sizes)
        boxes, scores, classes, valid, complete = self._run("box_head", features, proposals, proposal_valid, sizes)
        mask_probs = self._run("mask_head", features, boxes, classes, valid)
        self.history.append((padded.shape[1:], sum(self.stage_seconds.values()), compiles))
        if not (complete.asnumpy()[0] and rpn_converged.asnumpy()[0]):
            logger.warning("image %s: a fixed-size selection step may have cut the exact result short; raise %s",
                           image_id, self.complete_hint)
        outputs = [o.asnumpy()[0] for o in (boxes, scores, classes, valid, complete, mask_probs)]
        return raw_from_outputs(outputs, image_id, original_size, image_size)

    def __call__(self, image, image_id):
        padded, image_size = self.preprocess(image)
        return self.predict_preprocessed(padded, image_size, image.shape[:2], image_id)
