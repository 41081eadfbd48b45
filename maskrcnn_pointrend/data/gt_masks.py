"""Instance masks as box-aligned MxM grids, the ground truth PointRend's point supervision samples.

Cell (i, j) of an instance's grid covers the box-normalized square [j/M, (j+1)/M] x [i/M, (i+1)/M] of its
box (x0, y0, x1, y1) and holds the mask value at the cell centre, the image point
(x0 + (j + 0.5) / M * (x1 - x0), y0 + (i + 0.5) / M * (y1 - y0)). Image pixel p covers [p, p + 1].

Resizing an image together with its boxes leaves box-normalized coordinates unchanged, and a horizontal
flip maps u to 1 - u, i.e. reverses the grid's columns. A grid computed from the original annotation and
its box is therefore exact for every training scale.
"""
import numpy as np
import pycocotools.mask as mask_util

# Vertices are clamped to +-64 grid widths, which bounds pycocotools' work (it walks the boundary); only a
# box far smaller than its polygon (not COCO's tight boxes) has vertices that far out.
MAX_GRID_SPAN = 64


def polygons_grid(polygons, box, grid_size):
    """Polygons [(2P,) x0, y0, x1, y1, ...] in image pixels, box (4,) XYXY -> (M, M) uint8 union mask.

    pycocotools rasterizes them in grid coordinates, where a cell is a unit square as an image pixel is
    to it: the result is what pycocotools' annToMask would give on an image of the box at MxM pixels.
    """
    x0, y0, x1, y1 = box
    origin = np.asarray([x0, y0])
    cells_per_pixel = np.asarray([grid_size / (x1 - x0), grid_size / (y1 - y0)])
    limit = MAX_GRID_SPAN * grid_size
    in_grid = [np.clip((p.reshape(-1, 2) - origin) * cells_per_pixel, -limit, limit).reshape(-1)
               for p in polygons]
    rles = mask_util.frPyObjects([p.tolist() for p in in_grid], grid_size, grid_size)
    return mask_util.decode(mask_util.merge(rles))


def cell_centres(box, grid_size):
    """box (4,) XYXY -> x (M,), y (M,): image coordinates of the grid's cell centres."""
    x0, y0, x1, y1 = box
    u = (np.arange(grid_size) + 0.5) / grid_size
    return x0 + u * (x1 - x0), y0 + u * (y1 - y0)


def sample_grid(mask, box, grid_size):
    """(H, W) mask -> (M, M): the pixel under each cell centre of `box` (0 outside the image)."""
    height, width = mask.shape
    xs, ys = cell_centres(box, grid_size)
    cols, rows = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    grid = mask[np.clip(rows, 0, height - 1)[:, None], np.clip(cols, 0, width - 1)[None, :]]
    return np.where(inside, grid, 0).astype(np.uint8)


def rle_grid(rle_counts, height, width, box, grid_size):
    """Compressed RLE counts of an (height, width) mask, box (4,) XYXY -> (M, M) uint8."""
    mask = mask_util.decode({"size": [height, width], "counts": rle_counts})
    return sample_grid(mask, box, grid_size)


def instance_grid(segmentation, height, width, box, grid_size):
    """A polygon list or RLE bytes of an instance of an (height, width) image -> (M, M) uint8 grid of `box`."""
    if isinstance(segmentation, bytes):
        return rle_grid(segmentation, height, width, box, grid_size)
    return polygons_grid(segmentation, box, grid_size)
