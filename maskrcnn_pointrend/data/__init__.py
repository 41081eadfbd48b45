"""COCO-format data: annotation parsing, conversion to MindRecord, and the mindspore.dataset input pipelines.

- `coco_json`: reads and checks a COCO instances json, drops bad annotations with a count per reason.
- `coco_mindrecord`: the MindRecord schema, the parallel atomic converter, and reading the output back.
- `transforms`: detectron2-exact image decoding and resizing, inference preprocessing.
- `gt_masks`: instance geometry at the training size (boxes, bitmasks as detectron2 makes them) and the
  MxM mask grids PointRend's training targets sample.
- `dataset`: the training (fixed canvases, padded targets) and test pipelines over a converted dataset.
"""
