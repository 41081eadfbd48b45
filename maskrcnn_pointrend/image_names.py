"""Ids and overlay names of the images given on a command line (infer.py), unique so that the results, raw files
and overlays of different images never mix or overwrite each other."""
import os


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def image_ids(paths):
    """-> an image id per path: the numbers the file names are when every name is one and no two are equal (COCO
    names such as 000000397133.jpg), else the positions 0, 1, ... of the paths."""
    stems = [_stem(path) for path in paths]
    if all(stem.isdecimal() for stem in stems) and len({int(stem) for stem in stems}) == len(stems):
        return [int(stem) for stem in stems]
    return list(range(len(paths)))


def overlay_names(paths, ids):
    """-> an overlay file name per path: `<file name without extension>.png` when those names are distinct, else
    `<image id>_<file name without extension>.png` for every path (unique, as the ids are)."""
    stems = [_stem(path) for path in paths]
    if len(set(stems)) == len(stems):
        return [f"{stem}.png" for stem in stems]
    return [f"{image_id}_{stem}.png" for stem, image_id in zip(stems, ids)]
