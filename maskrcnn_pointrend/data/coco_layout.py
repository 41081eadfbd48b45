"""Where a COCO-layout dataset keeps a split: <root>/annotations/instances_<split>.json for the annotations and
<root>/<split>/ for the image files they name."""
import os


def annotation_path(coco_root, split):
    """The annotation file of `split` under coco_root."""
    return os.path.join(coco_root, "annotations", f"instances_{split}.json")


def image_dir(coco_root, split):
    """The folder of `split`'s image files under coco_root."""
    return os.path.join(coco_root, split)
