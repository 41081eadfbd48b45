"""COCO-format data: annotation parsing, conversion to MindRecord, and the mindspore.dataset input pipelines.

- `coco_json`: reads and checks a COCO instances json, drops bad annotations with a count per reason.
- `coco_categories`: the 80 COCO categories, the classes detectron2 and MindSpore zoo checkpoints predict.
- `image_check`: checks image files (present, decodable, supported pixel format, expected size) in parallel.
- `mindrecord_schema`: the format of a converted split: its directory's files and the record of one image.
- `mindrecord_pages`: shard and page sizes that keep MindRecord files about the size of their images.
- `conversion_summary`: what a conversion kept and skipped, by reason (summary.json) and as a table.
- `mindrecord_writer`: `convert_coco`, COCO -> a converted directory, published atomically.
- `mindrecord_reader`: the shard files, categories, image index and images of a complete conversion.
- `transforms`: detectron2-exact image decoding and resizing, inference preprocessing.
- `instance_transform`: boxes and polygons through the training resize and flip, as detectron2 moves them.
- `gt_masks`: instance bitmasks as detectron2 makes them at the training size, kept as the MxM mask grids
  PointRend's training targets sample.
- `dataset`: the training (fixed canvases, padded targets) and test pipelines over a converted dataset.
"""
