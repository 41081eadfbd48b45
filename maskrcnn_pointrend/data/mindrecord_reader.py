"""Reading a converted COCO split (see mindrecord_schema): whether it is complete, its shard files, categories
and image index, from complete conversions only."""
import json
import os

import numpy as np

from .mindrecord_schema import CATEGORIES_FILE, COMPLETE_MARKER, IMAGE_INDEX_FILE


class IncompleteDatasetError(RuntimeError):
    pass


def is_complete(mindrecord_dir):
    """Whether mindrecord_dir holds a conversion that finished (its marker is written last)."""
    return os.path.isfile(os.path.join(mindrecord_dir, COMPLETE_MARKER))


def read_completion(mindrecord_dir):
    """-> the `_COMPLETE` marker of a converted directory; IncompleteDatasetError when it is not complete."""
    marker = os.path.join(mindrecord_dir, COMPLETE_MARKER)
    if not os.path.isdir(mindrecord_dir):
        raise IncompleteDatasetError(f"{mindrecord_dir} does not exist; create it with convert_coco.py")
    if not os.path.isfile(marker):
        raise IncompleteDatasetError(f"{mindrecord_dir} has no {COMPLETE_MARKER} marker: its conversion did not "
                                     "finish; run convert_coco.py again with --overwrite")
    with open(marker) as f:
        return json.load(f)


def mindrecord_files(mindrecord_dir):
    """-> the shard files of a complete conversion."""
    files = [os.path.join(mindrecord_dir, name) for name in read_completion(mindrecord_dir)["files"]]
    missing = [f for f in files if not os.path.isfile(f) or not os.path.isfile(f + ".db")]
    if missing:
        raise IncompleteDatasetError(f"{mindrecord_dir} lacks {', '.join(missing)}; convert it again")
    return files


def _read_json(mindrecord_dir, name):
    read_completion(mindrecord_dir)
    with open(os.path.join(mindrecord_dir, name)) as f:
        return json.load(f)


def read_category_map(mindrecord_dir):
    """-> COCO category dicts (id, name, ...) in contiguous class order: index i is class i."""
    return _read_json(mindrecord_dir, CATEGORIES_FILE)


def read_image_index(mindrecord_dir):
    """-> {column: (num_records,) array}: image_id, file_name, height, width, num_instances, num_crowd."""
    return {k: np.asarray(v) for k, v in _read_json(mindrecord_dir, IMAGE_INDEX_FILE).items()}
