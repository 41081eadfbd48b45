"""Checking image files before the work that reads them: present, decodable, of a supported pixel format and,
when given, of the size the annotation file says -- fast, in parallel, without decoding at full scale.

Problems, by reason: `missing_file`; `unreadable_image` (Pillow cannot open and decode it, which catches
truncated and corrupt files); `unsupported_pixel_format` (see transforms.unsupported_pixel_format);
`size_mismatch` (the size after EXIF orientation differs from the expected one).
"""
import multiprocessing
import os
from typing import NamedTuple

from PIL import ExifTags, Image

from ..progress import progress_bar
from .transforms import unsupported_pixel_format

IMAGE_PROBLEMS = ("missing_file", "unreadable_image", "unsupported_pixel_format", "size_mismatch")


class ImageCheck(NamedTuple):
    problem: str    # one of IMAGE_PROBLEMS, or None for a good image
    num_bytes: int  # the file's size
    detail: str     # what is wrong, for a message that names the file (None for a good image)


def inspect_image(path, height=None, width=None):
    """-> ImageCheck of the image file `path`, expected to be height x width (after EXIF orientation) unless
    they are None. Decodes JPEGs at 1/8 scale, so a truncated file fails fast."""
    try:
        num_bytes = os.path.getsize(path)
    except OSError as e:
        return ImageCheck("missing_file", 0, e.strerror)
    try:
        with Image.open(path) as image:
            raw_w, raw_h = image.size
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            mode = image.mode
            image.draft("RGB", (max(1, raw_w // 8), max(1, raw_h // 8)))
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return ImageCheck("unreadable_image", num_bytes, f"not a readable image ({e})")
    unsupported = unsupported_pixel_format(mode)
    if unsupported:
        return ImageCheck("unsupported_pixel_format", num_bytes, unsupported)
    # EXIF orientations 5..8 transpose the image (what read_image_bgr applies)
    decoded_hw = (raw_w, raw_h) if orientation in (5, 6, 7, 8) else (raw_h, raw_w)
    if height is not None and decoded_hw != (height, width):
        return ImageCheck("size_mismatch", num_bytes, f"{decoded_hw[0]}x{decoded_hw[1]} (HxW), the annotation "
                                                      f"file says {height}x{width}")
    return ImageCheck(None, num_bytes, None)


def _inspect_task(task):
    return inspect_image(*task)


def inspect_images(tasks, workers):
    """(path, height, width) per image -> its ImageCheck, checked by `workers` processes with a progress bar."""
    chunk = max(1, min(64, len(tasks) // (8 * workers)))
    results = []
    with progress_bar(len(tasks), "checking images", "img") as bar:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap(_inspect_task, tasks, chunksize=chunk):
                results.append(result)
                bar.update()
    return results
