"""Instance masks for PointRend's training targets: each instance's bitmask as detectron2 makes it at the
training resolution, kept as its bilinear interpolant sampled on an MxM grid over a frame around its box.

detectron2 transforms the polygons (resize, flip), rasterizes them with pycocotools at the resized image's
pixels, and samples that bitmask bilinearly (zero outside the image) for the point labels and for the coarse
target. A bitmask per instance at canvas size would cost 100 x 800 x 1344 bytes per image; instead each
instance keeps the bilinear interpolant of its bitmask at the cell centres of a grid over its frame, the box
grown by FRAME_MARGIN pixels (the interpolant of the box's edge pixels reaches half a pixel beyond the
box), as uint8 probabilities x 255. Bilinear samples of that grid are then detectron2's bilinear samples of
the bitmask, up to the grid's resolution and the uint8 rounding.

Pixel (i, j) covers [j, j + 1) x [i, i + 1); grid cell (a, b) of a frame (x0, y0, x1, y1) holds the
interpolant at (x0 + (b + 0.5) / M * (x1 - x0), y0 + (a + 0.5) / M * (y1 - y0)).
"""
import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from maskrcnn.postprocess import interpolation_weights

# Pixels the frame extends beyond each side of the box.
FRAME_MARGIN = 1.0
GRID_SCALE = 255  # uint8 grid value of probability 1


def mask_frame(box):
    """(4,) XYXY box -> (4,) float32 frame of its mask grid."""
    return np.asarray(box, np.float32) + np.float32(FRAME_MARGIN) * np.asarray([-1, -1, 1, 1], np.float32)


def pixel_window(frame, image_hw):
    """The integer pixel window (x0, y0, x1, y1) that covers `frame` (XYXY) with a pixel to spare, clipped to the
    image: every pixel a bilinear sample inside the frame reads."""
    height, width = image_hw
    x0, y0 = (max(int(np.floor(v)) - 1, 0) for v in frame[:2])
    x1, y1 = min(int(np.ceil(frame[2])) + 1, width), min(int(np.ceil(frame[3])) + 1, height)
    return x0, y0, max(x1, x0), max(y1, y0)


def polygons_bitmask(polygons, image_hw):
    """Transformed polygons [(2P,) float64] -> (H, W) uint8 bitmask of the image, as detectron2's
    polygons_to_bitmask rasterizes them (pycocotools at the image size: its rounding of 5 * x + 0.5 makes the
    result depend on the coordinates exactly, so they are not shifted into a smaller window)."""
    height, width = image_hw
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects([p.tolist() for p in polygons], height, width)))


def rle_bitmask(rle_counts, geometry):
    """Compressed RLE counts of an original-size mask -> the (new_h, new_w) uint8 bitmask of the transformed
    image: Pillow nearest-neighbour resize, then the flip (detectron2's apply_segmentation)."""
    mask = mask_util.decode({"size": [geometry.height, geometry.width], "counts": rle_counts})
    resized = np.asarray(Image.fromarray(mask).resize((geometry.new_w, geometry.new_h), Image.Resampling.NEAREST))
    return resized[:, ::-1] if geometry.flip else resized


def sample_frame(bitmask, origin, frame, grid_size):
    """(h, w) bitmask whose pixel (0, 0) is image pixel `origin` (x, y) -> (M, M) float32 bilinear interpolant
    (zero outside the bitmask) at the cell centres of `frame`."""
    centres = (np.arange(grid_size, dtype=np.float64) + 0.5) / grid_size
    xs = frame[0] + centres * (frame[2] - frame[0]) - 0.5 - origin[0]
    ys = frame[1] + centres * (frame[3] - frame[1]) - 0.5 - origin[1]
    rows = interpolation_weights(ys, bitmask.shape[0])
    cols = interpolation_weights(xs, bitmask.shape[1])
    return rows @ bitmask.astype(np.float32) @ cols.T


def instance_grid(segmentation, geometry, box, grid_size):
    """An instance's original polygons [(2P,) float64] or RLE counts (bytes), the image's ResizeFlip and the
    instance's transformed box -> ((M, M) uint8 grid over mask_frame(box), its frame (4,) float32, whether
    the bitmask has any pixel (detectron2 drops instances whose bitmask is empty))."""
    if isinstance(segmentation, bytes):
        bitmask = rle_bitmask(segmentation, geometry)
    else:
        polygons = [geometry.coords(p.reshape(-1, 2)).reshape(-1) for p in segmentation]
        bitmask = polygons_bitmask(polygons, (geometry.new_h, geometry.new_w))
    frame = mask_frame(box)
    x0, y0, x1, y1 = pixel_window(frame, bitmask.shape)
    values = sample_frame(bitmask[y0:y1, x0:x1], (x0, y0), frame, grid_size)
    grid = np.rint(np.clip(values, 0.0, 1.0) * GRID_SCALE).astype(np.uint8)
    return grid, frame, bool(bitmask.any())
