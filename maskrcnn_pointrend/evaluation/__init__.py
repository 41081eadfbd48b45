"""COCO evaluation: box, mask and Boundary AP with logs and per-category tables."""
from .boundary_iou import BoundaryCOCOeval, mask_to_boundary
from .coco_evaluation import IOU_TYPES, STAT_NAMES, evaluate_coco

__all__ = ["BoundaryCOCOeval", "IOU_TYPES", "STAT_NAMES", "evaluate_coco", "mask_to_boundary"]
