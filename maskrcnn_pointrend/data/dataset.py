"""mindspore.dataset pipelines over a converted COCO MindRecord directory (see mindrecord_schema).

Training (detectron2's PointRend recipe and DatasetMapper, with static shapes): decode, resize the shorter side
to a random choice of cfg.input.min_size_train (longer side <= max_size_train), flip horizontally with
p = 0.5, pad to the landscape or portrait canvas of cfg.input.train_canvases (a batch holds images of one
canvas; the network ignores the anchors over the padding beyond each image's own multiple of
size_divisibility), or without canvases to a multiple of size_divisibility as detectron2 pads (one compiled
graph per padded batch shape). Targets: the non-crowd instances whose box and bitmask stay non-empty at the
training size (crowd and empty ones are left out, as detectron2 does), boxes clipped to the image, at most
cfg.input.max_instances per image (the largest boxes are kept), padded to that many slots with a validity
mask; each mask as an MxM grid over a frame around its box (gt_masks, gt_mask_frames; see gt_masks). Images
without a non-crowd instance are dropped. Normalization happens inside the network: images stay uint8 BGR,
zero-padded.

Test: transforms.InferenceInput (resize to min_size_test / max_size_test, zero-pad to a test canvas), one image
at a time, in file order, with its original size to paste results back.
"""
import logging

import mindspore.dataset as ds
import numpy as np

from .mindrecord_reader import mindrecord_files, read_image_index
from .mindrecord_schema import INSTANCE_COLUMNS, decode_instances
from .gt_masks import instance_grid
from .instance_transform import ResizeFlip, nonempty_boxes
from .transforms import (InferenceInput, canvas_shape, orientation_canvases, pad_chw, read_image_bgr, resize_image,
                         resize_shortest_edge_shape)

logger = logging.getLogger(__name__)

TRAIN_COLUMNS = ("image", "image_size", "gt_boxes", "gt_classes", "gt_valid", "gt_masks", "gt_mask_frames")
TEST_COLUMNS = ("image", "image_size", "original_size", "image_id")


def largest_boxes(indices, boxes, max_instances):
    """Instance indices -> the `max_instances` of them with the largest boxes (N, 4) when there are more, in
    their original order."""
    indices = np.asarray(indices, np.int64)
    if len(indices) > max_instances:
        areas = (boxes[indices, 2] - boxes[indices, 0]) * (boxes[indices, 3] - boxes[indices, 1])
        indices = np.sort(indices[np.argsort(-areas, kind="stable")[:max_instances]])
    return indices


def training_selection_counts(image_index, max_instances):
    """Per-image instance counts of a conversion -> what the training pipeline leaves out."""
    noncrowd = image_index["num_instances"] - image_index["num_crowd"]
    return {
        "images": len(noncrowd),
        "images_without_non_crowd_instances": int(np.sum(noncrowd == 0)),
        "crowd_instances": int(np.sum(image_index["num_crowd"])),
        "images_over_max_instances": int(np.sum(noncrowd > max_instances)),
        "instances_over_max_instances": int(np.sum(np.maximum(noncrowd - max_instances, 0))),
    }


class TrainTransform:
    """A record -> one training sample (TRAIN_COLUMNS), its random scale and flip drawn from its aug seed."""

    def __init__(self, min_sizes, sampling, max_size, random_flip, canvases, size_divisibility, max_instances,
                 grid_size):
        if sampling not in ("choice", "range") or (sampling == "range" and len(min_sizes) != 2):
            raise ValueError(f"min_size_train_sampling must be 'choice', or 'range' with two sizes; got {sampling!r} "
                             f"with {min_sizes}")
        if random_flip not in ("horizontal", "none"):
            raise ValueError(f"random_flip must be 'horizontal' or 'none', got {random_flip!r}")
        self.min_sizes = list(min_sizes)
        self.sampling = sampling
        self.max_size = max_size
        self.flip_probability = 0.5 if random_flip == "horizontal" else 0.0
        self.canvases = orientation_canvases(canvases, max(min_sizes), max_size)
        self.size_divisibility = size_divisibility
        self.max_instances = max_instances
        self.grid_size = grid_size

    @classmethod
    def from_config(cls, cfg):
        i = cfg.input
        return cls(i.min_size_train, i.min_size_train_sampling, i.max_size_train, i.random_flip, i.train_canvases,
                   i.size_divisibility, i.max_instances, i.mask_grid)

    def sample_short_edge(self, rng):
        if self.sampling == "range":
            return int(rng.integers(min(self.min_sizes), max(self.min_sizes) + 1))
        return int(rng.choice(self.min_sizes))

    def __call__(self, image, aug_seed, *instance_columns):
        rng = np.random.default_rng(int(aug_seed))
        short_edge = self.sample_short_edge(rng)
        flip = rng.random() < self.flip_probability
        instances = decode_instances(dict(zip(INSTANCE_COLUMNS, instance_columns)))
        return self.transform(read_image_bgr(image.tobytes()), instances, short_edge, flip)

    def transform(self, image, instances, short_edge, flip):
        """(H, W, 3) uint8 BGR, RecordInstances -> the TRAIN_COLUMNS arrays of one image (no batch axis).

        As detectron2's DatasetMapper: boxes and polygons follow the resize and flip (then boxes are clipped to
        the image), crowd instances are left out, and so are instances whose box or bitmask is empty at the
        training size (filter_empty_instances)."""
        height, width = image.shape[:2]
        new_h, new_w = resize_shortest_edge_shape(height, width, short_edge, self.max_size)
        resized = resize_image(image, new_h, new_w)
        geometry = ResizeFlip(height, width, new_h, new_w, flip)
        boxes = geometry.boxes(instances.boxes)
        candidates = np.flatnonzero((instances.iscrowd == 0) & nonempty_boxes(boxes))
        grids = {i: instance_grid(instances.segmentations[i], geometry, boxes[i], self.grid_size) for i in candidates}
        kept = largest_boxes([i for i in candidates if grids[i][2]], boxes, self.max_instances)
        slots, grid = self.max_instances, self.grid_size
        masks = np.zeros((slots, grid, grid), np.uint8)
        frames = np.zeros((slots, 4), np.float32)
        for slot, i in enumerate(kept):
            masks[slot], frames[slot] = grids[i][:2]
        gt_boxes = np.zeros((slots, 4), np.float32)
        gt_boxes[:len(kept)] = boxes[kept]
        gt_classes = np.zeros(slots, np.int32)
        gt_classes[:len(kept)] = instances.classes[kept]
        gt_valid = np.zeros(slots, np.float32)
        gt_valid[:len(kept)] = 1.0
        canvas = canvas_shape(new_h, new_w, self.canvases, self.size_divisibility)
        image = pad_chw(resized[:, ::-1] if flip else resized, *canvas)
        return image, np.asarray([new_h, new_w], np.int32), gt_boxes, gt_classes, gt_valid, masks, frames


def record_canvases(image_index):
    """-> (num_records,) int64: 0 for records TrainTransform pads to the landscape canvas (W > H), 1 for the
    portrait one (see transforms.canvas_shape)."""
    return (image_index["width"] <= image_index["height"]).astype(np.int64)


def training_stream(image_index, seed, global_batch, start_batch, num_batches):
    """Batches start_batch .. start_batch + num_batches - 1 of the endless training stream -> record indices
    (num_batches, global_batch) and augmentation seeds (num_batches, global_batch) int64.

    Each epoch visits the records with a non-crowd instance in a new order (epoch e is permuted by a
    Generator seeded (seed, e), which also draws each visit's augmentation seed); a batch is the next
    `global_batch` visits of one canvas, and batches come in the order they fill up (bucketing by canvas,
    replayed). Any stretch of the stream follows from the record index alone, without reading an image.
    """
    candidates = np.flatnonzero(image_index["num_instances"] - image_index["num_crowd"] > 0)
    if not len(candidates):
        raise ValueError("no record has a non-crowd instance: there is nothing to train on")
    needed = start_batch + num_batches
    # E epochs fill at least E * len(candidates) / global_batch - 2 batches (one partial batch per canvas)
    num_epochs = -(-(needed + 2) * global_batch // len(candidates))
    records, seeds = [], []
    for epoch in range(num_epochs):
        rng = np.random.default_rng([seed, epoch])
        records.append(candidates[rng.permutation(len(candidates))])
        seeds.append(rng.integers(2 ** 62, size=len(candidates)))
    records, seeds = np.concatenate(records), np.concatenate(seeds)
    visit_canvas = record_canvases(image_index)[records]
    batches = np.concatenate([visits[:len(visits) // global_batch * global_batch].reshape(-1, global_batch)
                              for visits in (np.flatnonzero(visit_canvas == c) for c in (0, 1))])
    batches = batches[np.argsort(batches[:, -1], kind="stable")][start_batch:needed]  # in the order they fill up
    return records[batches], seeds[batches]


def create_train_dataset(mindrecord_dir, cfg, batch_size, num_batches, num_shards=1, shard_id=0, seed=None,
                         num_workers=2, start_batch=0):
    """-> a dataset of `num_batches` batches with TRAIN_COLUMNS: image (B, 3, Hc, Wc) uint8, image_size (B, 2)
    int32, gt_boxes (B, K, 4) float32, gt_classes (B, K) int32, gt_valid (B, K) float32, gt_masks (B, K, M, M)
    uint8, gt_mask_frames (B, K, 4) float32, K = cfg.input.max_instances, M = cfg.input.mask_grid. Without
    canvases the images of a batch are padded to the largest of them (each a multiple of size_divisibility).

    The batches are numbers start_batch, start_batch + 1, ... of the training stream of `seed` (default
    cfg.seed; see training_stream) in global batches of num_shards * batch_size images, of which rank
    `shard_id` gets images [shard_id * B, (shard_id + 1) * B): the ranks of a distributed job together see
    what one process with the whole batch sees, and a job resumed at batch k sees what it would have seen
    had it not stopped (images before start_batch are never read). Records are read in stream order and
    transformed by `num_workers` threads (faster than processes here: a sample is ~10 MB that processes
    would copy through shared memory). Logs what training leaves out of the dataset.
    """
    seed = cfg.seed if seed is None else seed
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id {shard_id} is not in [0, {num_shards})")
    transform = TrainTransform.from_config(cfg)
    files = mindrecord_files(mindrecord_dir)
    image_index = read_image_index(mindrecord_dir)
    counts = training_selection_counts(image_index, cfg.input.max_instances)
    logger.info("%s: %d images; training drops %d without a non-crowd instance, leaves out %d crowd instances, "
                "and drops %d instances beyond max_instances=%d in %d images (keeping the largest boxes)",
                mindrecord_dir, counts["images"], counts["images_without_non_crowd_instances"],
                counts["crowd_instances"], counts["instances_over_max_instances"], cfg.input.max_instances,
                counts["images_over_max_instances"])
    try:
        records, aug_seeds = training_stream(image_index, seed, num_shards * batch_size, start_batch, num_batches)
    except ValueError as e:
        raise ValueError(f"{mindrecord_dir}: {e}") from None
    mine = slice(shard_id * batch_size, (shard_id + 1) * batch_size)
    order = records[:, mine].reshape(-1).tolist()
    # a SubsetSampler of MindDataset takes at most as many indices as there are records: read in pieces
    piece = len(image_index["image_id"])
    data, *more = [ds.MindDataset(files, columns_list=["image", *INSTANCE_COLUMNS], num_parallel_workers=1,
                                  sampler=ds.SubsetSampler(order[start:start + piece]))
                   for start in range(0, len(order), piece)]
    if more:
        data = data.concat(more)
    seeds = ds.NumpySlicesDataset({"aug_seed": aug_seeds[:, mine].reshape(-1)}, shuffle=False)
    data = ds.zip((data, seeds))
    data = data.map(transform, input_columns=["image", "aug_seed", *INSTANCE_COLUMNS],
                    output_columns=list(TRAIN_COLUMNS), num_parallel_workers=num_workers)
    if transform.canvases:
        data = data.batch(batch_size, drop_remainder=True)
    else:
        data = data.padded_batch(batch_size, drop_remainder=True, pad_info={"image": ([3, None, None], 0)})
    return data.project(list(TRAIN_COLUMNS))


class EvalTransform:
    """A record's image bytes -> image (3, Hp, Wp) uint8, image_size (2,) int32, original_size (2,) int32 [and the
    decoded image (H0, W0, 3) uint8 BGR when with_original]."""

    def __init__(self, inference_input, with_original=False):
        self.inference_input = inference_input
        self.with_original = with_original

    def __call__(self, image):
        decoded = read_image_bgr(image.tobytes())
        padded, image_size = self.inference_input(decoded)
        outputs = padded, np.asarray(image_size, np.int32), np.asarray(decoded.shape[:2], np.int32)
        return outputs + (decoded,) if self.with_original else outputs


def create_test_dataset(mindrecord_dir, cfg, num_workers=2, record_order=None, with_original=False):
    """-> a dataset of single images with TEST_COLUMNS: image (3, Hp, Wp) uint8 BGR, image_size (2,) int32 (h, w)
    after resize, original_size (2,) int32 (H0, W0), image_id int64 [and with_original the decoded image
    "original" (H0, W0, 3) uint8 BGR]; in record order, or the records `record_order` (indices) in that order."""
    sampler = ds.SubsetSampler(list(record_order)) if record_order is not None else None
    data = ds.MindDataset(mindrecord_files(mindrecord_dir), columns_list=["image", "image_id"],
                          num_parallel_workers=1, shuffle=False if sampler is None else None, sampler=sampler)
    outputs = ["image", "image_size", "original_size"] + (["original"] if with_original else [])
    data = data.map(EvalTransform(InferenceInput.from_config(cfg.input), with_original), input_columns=["image"],
                    output_columns=outputs, num_parallel_workers=num_workers)
    return data.project(list(TEST_COLUMNS) + (["original"] if with_original else []))
