// ROIAlignV2's per-ROI and per-bin arithmetic, compiled into both the CPU kernels (roi_align_cpu.cc, g++) and the
// CUDA kernels (roi_align_gpu.cu, NVRTC): which ROIs are pooled, where a bin's samples lie, and the bilinear taps
// they make, in torchvision's float expression order (no fused multiply-add on either device).
#pragma once

#include "portable.h"

namespace roi_align {

// Beyond this many samples per bin side a box is certainly malformed (coordinates ~1e8 pixels).
constexpr float kMaxGrid = 1 << 20;

enum class RoiStatus { kPooled, kSkipped, kBadLevel, kNonFinite, kBadBatch, kTooLarge };

// Whether ROI `roi` [batch, x1, y1, x2, y2] on `level` is pooled (kPooled), skipped with a zero output (level -1),
// or invalid, and why.
PORTABLE RoiStatus roi_status(const float *roi, int level, int num_levels, int64_t num_images,
                              const float *spatial_scales, int pooled) {
  if (level < -1 || level >= num_levels) return RoiStatus::kBadLevel;
  if (level < 0) return RoiStatus::kSkipped;
  for (int k = 0; k < 5; ++k)
    if (!portable::is_finite(roi[k])) return RoiStatus::kNonFinite;
  if (roi[0] < 0.f || roi[0] >= static_cast<float>(num_images)) return RoiStatus::kBadBatch;
  const float extent = portable::max(portable::abs(roi[3] - roi[1]), portable::abs(roi[4] - roi[2])) *
                       spatial_scales[level];
  if (!(extent / static_cast<float>(pooled) < kMaxGrid)) return RoiStatus::kTooLarge;
  return RoiStatus::kPooled;
}

// The rows (or columns) of a level of `size` cells at `scale` that exist for an image whose input extent is
// `extent` pixels, ceil(extent * scale) within [1, size]: the ROI is pooled as from that image's own input, whose
// maps end there (see maskrcnn/layers/extent.py).
PORTABLE int cells_within(int extent, float scale, int size) {
  const float cells = portable::ceil(static_cast<float>(extent) * scale);
  return cells < 1.f ? 1 : cells < static_cast<float>(size) ? static_cast<int>(cells) : size;
}

// A pooled ROI in feature coordinates (aligned: shifted by -0.5 pixel) with its sampling grid per bin side.
struct RoiGeometry {
  int batch;
  float start_x, start_y, bin_w, bin_h;
  int grid_x, grid_y;
  float count;  // samples per bin, the divisor of a bin's sum
};

// Adaptive sampling grid: ceil(extent / pooled) samples per bin side, none for an empty extent.
PORTABLE int adaptive_grid(float extent, int pooled) {
  const float grid = portable::ceil(extent / static_cast<float>(pooled));
  return grid >= 1.f ? static_cast<int>(grid) : 0;
}

PORTABLE RoiGeometry roi_geometry(const float *roi, float scale, int sampling_ratio, int pooled) {
  RoiGeometry g;
  g.batch = static_cast<int>(roi[0]);
  g.start_x = roi[1] * scale - 0.5f;
  g.start_y = roi[2] * scale - 0.5f;
  const float extent_x = (roi[3] * scale - 0.5f) - g.start_x;
  const float extent_y = (roi[4] * scale - 0.5f) - g.start_y;
  g.grid_y = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(extent_y, pooled);
  g.grid_x = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(extent_x, pooled);
  g.count = static_cast<float>(portable::max(g.grid_y * g.grid_x, 1));
  g.bin_h = extent_y / static_cast<float>(pooled);
  g.bin_w = extent_x / static_cast<float>(pooled);
  return g;
}

// The taps of bin `bin` along one axis of `size` pixels: each a feature row (or column) index with the summed
// weight of the bin's consecutive samples that touch it, in sample order. A sample at
// start + bin * bin_size + (i + 0.5) * bin_size / grid outside [-1, size] adds nothing, one below 0 reads
// index 0, one at or beyond size - 1 reads index size - 1. The weight of a sample factors into a y weight times
// an x weight, so a bin is sum_{x taps} wx * sum_{y taps} wy * F[y][x] / count.
class BinTaps {
 public:
  PORTABLE BinTaps(float start, float bin_size, int grid, int size, int bin)
      : start_(start), bin_size_(bin_size), grid_(grid), size_(size), bin_(bin) {}

  // The next tap; false when the bin has no more.
  PORTABLE bool next(int *index, float *weight) {
    if (!has_lookahead_ && !(has_lookahead_ = next_corner(&lookahead_index_, &lookahead_weight_))) return false;
    *index = lookahead_index_;
    *weight = lookahead_weight_;
    while ((has_lookahead_ = next_corner(&lookahead_index_, &lookahead_weight_)) && lookahead_index_ == *index)
      *weight += lookahead_weight_;
    return true;
  }

 private:
  // The next of the two (index, weight) corners of the bin's in-range samples, unmerged.
  PORTABLE bool next_corner(int *index, float *weight) {
    while (corner_ == 2) {
      if (sample_ == grid_) return false;
      if (place_sample(sample_++)) corner_ = 0;
    }
    *index = corner_ == 0 ? low_ : high_;
    *weight = corner_ == 0 ? 1.f - frac_ : frac_;
    ++corner_;
    return true;
  }

  PORTABLE bool place_sample(int i) {
    float v = start_ + bin_ * bin_size_ + static_cast<float>(i + .5f) * bin_size_ / static_cast<float>(grid_);
    if (!(v >= -1.f && v <= static_cast<float>(size_))) return false;
    if (v <= 0.f) v = 0.f;
    low_ = static_cast<int>(v);
    high_ = low_ + 1;
    if (low_ >= size_ - 1) {
      low_ = high_ = size_ - 1;
      v = static_cast<float>(low_);
    }
    frac_ = v - static_cast<float>(low_);
    return true;
  }

  float start_, bin_size_;
  int grid_, size_, bin_;
  int sample_ = 0, corner_ = 2;  // corner_ == 2: the current sample's corners are used up
  int low_ = 0, high_ = 0;
  float frac_ = 0.f;
  bool has_lookahead_ = false;
  int lookahead_index_ = 0;
  float lookahead_weight_ = 0.f;
};

// The CUDA kernels' view of the L feature maps (forward) or feature gradients (backward), (N, C, H_l, W_l) each,
// passed by value from the host.
constexpr int kMaxLevels = 8;
struct LevelMaps {
  float *data[kMaxLevels];
  int height[kMaxLevels];
  int width[kMaxLevels];
};
static_assert(sizeof(LevelMaps) == 128, "tools/check_gpu_kernels.py passes LevelMaps as 128 bytes");

}  // namespace roi_align
