"""Pure image transforms with detectron2's exact semantics (our inference must equal detectron2's).

Images are uint8 HWC BGR as detectron2's `read_image(format="BGR")` returns them; resizing is Pillow
bilinear as detectron2's `ResizeTransform` does for uint8 images, to the size its `ResizeShortestEdge`
computes. Normalization is left to the network, so padding is zeros in uint8.
"""
import io
import os

import numpy as np
from PIL import Image, ImageOps


# Pillow modes of one 16-bit channel (e.g. 16-bit grayscale PNG or TIFF): reduced to 8 bits by their high byte,
# as Pillow reduces 16-bit RGB PNGs (which it opens as "RGB"). Converting them as other modes would clip every
# value above 255 to white.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Modes whose values have no defined range: refused rather than guessed.
UNSUPPORTED_MODES = {"I": "32-bit integer", "F": "32-bit floating-point"}


class ImageReadError(OSError):
    pass


def unsupported_pixel_format(mode):
    """A Pillow image mode -> why its pixels cannot be read as 8-bit colour, or None when they can."""
    if mode in UNSUPPORTED_MODES:
        return (f"{UNSUPPORTED_MODES[mode]} pixels (Pillow mode {mode}) have no defined range; save the image "
                "with 8 or 16 bits per channel")
    return None


def pixels_rgb(image):
    """A decoded Pillow image -> (H, W, 3) uint8 RGB; 16-bit channels keep their high byte."""
    if image.mode in SIXTEEN_BIT_MODES:
        gray = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def read_image_bgr(source):
    """A file path or the file's bytes -> (H, W, 3) uint8 BGR with the EXIF orientation applied. Images of
    16 bits per channel are reduced to 8 bits; 32-bit integer and float images are an ImageReadError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, stream = "<image bytes>", io.BytesIO(source)
    else:
        name = stream = os.fspath(source)
    try:
        with Image.open(stream) as image:
            problem = unsupported_pixel_format(image.mode)
            if problem is None:
                rgb = pixels_rgb(ImageOps.exif_transpose(image))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot read image {name}: {e}") from None
    if problem:
        raise ImageReadError(f"cannot read image {name}: {problem}")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def resize_shortest_edge_shape(height, width, short_edge, max_size):
    """(height, width) -> (new_h, new_w): shorter side to `short_edge`, longer side at most `max_size`."""
    scale = short_edge / min(height, width)
    if height < width:
        new_h, new_w = float(short_edge), scale * width
    else:
        new_h, new_w = scale * height, float(short_edge)
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_image(image, new_h, new_w):
    """(H, W, 3) uint8 -> (new_h, new_w, 3) uint8, Pillow bilinear."""
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def pad_chw(image, height, width):
    """(h, w, 3) uint8 -> (3, height, width) uint8, zeros below and right of the image."""
    h, w = image.shape[:2]
    if h > height or w > width:
        raise ValueError(f"an image of {h}x{w} does not fit a {height}x{width} canvas")
    padded = np.zeros((image.shape[2], height, width), dtype=image.dtype)
    padded[:, :h, :w] = image.transpose(2, 0, 1)
    return padded


def padded_size(height, width, size_divisibility):
    """The smallest multiples of `size_divisibility` >= (height, width) (unchanged when it is <= 1)."""
    if size_divisibility <= 1:
        return height, width
    return (-(-height // size_divisibility) * size_divisibility,
            -(-width // size_divisibility) * size_divisibility)


def orientation_canvases(canvases, max_short_edge, max_size):
    """cfg.input.train_canvases or test_canvases -> ((H, W) landscape canvas, (H, W) portrait canvas), checked to
    hold every resized image: a landscape image is at most max_short_edge x max_size, a portrait one the
    transpose. A single canvas (e.g. a square one for small images) takes both orientations; none -> None."""
    if not canvases:
        return None
    if len(canvases) == 1:
        landscape = portrait = [tuple(canvases[0])]
    else:
        landscape = [tuple(c) for c in canvases if c[0] <= c[1]]
        portrait = [tuple(c) for c in canvases if c[0] > c[1]]
    if len(canvases) not in (1, 2) or len(landscape) != 1 or len(portrait) != 1:
        raise ValueError(f"canvases must hold one landscape (H <= W) and one portrait (H > W) "
                         f"canvas, or one canvas for both, got {canvases}")
    (lh, lw), (ph, pw) = landscape[0], portrait[0]
    if lh < max_short_edge or lw < max_size or ph < max_size or pw < max_short_edge:
        raise ValueError(f"canvases {canvases} cannot hold images resized to a shorter side of "
                         f"{max_short_edge} and a longer side of {max_size}: need [{max_short_edge}, {max_size}] "
                         f"and [{max_size}, {max_short_edge}] or larger")
    return landscape[0], portrait[0]


def canvas_shape(height, width, canvases, size_divisibility):
    """(H, W) the network takes a resized image of height x width as: the landscape (width > height) or portrait
    canvas of orientation_canvases' pair, or without canvases the image rounded up to a multiple of
    size_divisibility."""
    if canvases is None:
        return padded_size(height, width, size_divisibility)
    return canvases[0] if width > height else canvases[1]


class InferenceInput:
    """The test-time input of cfg.input: shorter side resized to min_size_test (the longer at most max_size_test),
    zero-padded to the orientation's canvas of test_canvases (one compiled input shape per canvas; the network
    computes each image as in an input of its size padded to size_divisibility, see maskrcnn/layers/extent), or
    without canvases to a multiple of size_divisibility as detectron2 pads."""

    def __init__(self, min_size, max_size, size_divisibility, canvases):
        self.min_size, self.max_size, self.size_divisibility = min_size, max_size, size_divisibility
        self.canvases = orientation_canvases(canvases, min_size, max_size)

    @classmethod
    def from_config(cls, cfg_input):
        return cls(cfg_input.min_size_test, cfg_input.max_size_test, cfg_input.size_divisibility,
                   cfg_input.test_canvases)

    def resized_size(self, height, width):
        """(h, w) of an image of height x width after the test resize."""
        return resize_shortest_edge_shape(height, width, self.min_size, self.max_size)

    def shape(self, height, width):
        """(Hp, Wp) of the network input of an image of height x width."""
        return canvas_shape(*self.resized_size(height, width), self.canvases, self.size_divisibility)

    def __call__(self, image):
        """(H0, W0, 3) uint8 BGR -> ((3, Hp, Wp) uint8 zero-padded, (h, w) after resize)."""
        new_h, new_w = self.resized_size(*image.shape[:2])
        return pad_chw(resize_image(image, new_h, new_w), *self.shape(*image.shape[:2])), (new_h, new_w)
