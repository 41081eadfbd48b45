// ROIAlignV2 (detectron2 ROIAlign with aligned=True, i.e. torchvision roi_align semantics) over several
// feature levels, as MindSpore AOT CPU kernels (ops.Custom(func_type="aot")); roi_align.h holds the arithmetic
// this shares with the CUDA kernels, roi_align_params.h the parameter layout.
//
// The sampling grid of a bin is the Cartesian product of its y and x sample coordinates, and the
// bilinear weight of a sample factors into a y weight times an x weight (an out-of-map sample is zero
// along either axis). So each ROI is planned once as two lists of (feature index, weight) taps per
// bin, one per axis, shared by all channels, and a bin is
//     out[ph][pw] = sum_{x taps of pw} wx * (sum_{y taps of ph} wy * F[y][x]) / count
// whose inner sum runs over contiguous feature rows.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "roi_align.h"
#include "roi_align_params.h"

namespace {

using roi_align::Layout;
using roi_align::fail;

// Channels per forward work item.
constexpr int64_t kChannelBlock = 8;

// Taps of one axis of one ROI (roi_align::BinTaps of every bin): bin p owns taps [begin[p], begin[p + 1]).
struct AxisTaps {
  std::vector<int> begin;
  std::vector<int> index;
  std::vector<float> weight;
  int lo = 0;   // smallest tap index
  int hi = -1;  // largest tap index (hi < lo: no taps)
};

struct RoiPlan {
  int batch = 0;
  int level = -1;  // -1: the ROI is skipped and its output is zero
  float count = 1.f;
  AxisTaps y, x;
};

struct RoiInputs {
  const float *rois;
  const int32_t *levels;
  const int32_t *extents;
  const float *spatial_scales;
  int sampling_ratio;
};

AxisTaps plan_axis(float start, float bin_size, int grid, int pooled, int size) {
  AxisTaps taps;
  taps.begin.resize(pooled + 1);
  for (int p = 0; p < pooled; ++p) {
    taps.begin[p] = static_cast<int>(taps.index.size());
    roi_align::BinTaps bin(start, bin_size, grid, size, p);
    int index;
    float weight;
    while (bin.next(&index, &weight)) {
      taps.index.push_back(index);
      taps.weight.push_back(weight);
    }
  }
  taps.begin[pooled] = static_cast<int>(taps.index.size());
  if (!taps.index.empty()) {
    const auto bounds = std::minmax_element(taps.index.begin(), taps.index.end());
    taps.lo = *bounds.first;
    taps.hi = *bounds.second;
  }
  return taps;
}

RoiPlan plan_roi(const RoiInputs &in, const Layout &layout, int64_t r) {
  RoiPlan plan;
  plan.level = in.levels[r];
  if (plan.level < 0) return plan;
  const roi_align::RoiGeometry g =
      roi_align::roi_geometry(in.rois + r * 5, in.spatial_scales[plan.level], in.sampling_ratio, layout.pooled);
  plan.batch = g.batch;
  plan.count = g.count;
  const float scale = in.spatial_scales[plan.level];
  const int32_t *extent = in.extents + 2 * g.batch;
  plan.y = plan_axis(g.start_y, g.bin_h, g.grid_y, layout.pooled,
                     roi_align::cells_within(extent[0], scale, static_cast<int>(layout.heights[plan.level])));
  plan.x = plan_axis(g.start_x, g.bin_w, g.grid_x, layout.pooled,
                     roi_align::cells_within(extent[1], scale, static_cast<int>(layout.widths[plan.level])));
  return plan;
}

RoiInputs read_roi_inputs(void **params, const Layout &layout) {
  return {static_cast<const float *>(params[layout.rois]), static_cast<const int32_t *>(params[layout.rois + 1]),
          static_cast<const int32_t *>(params[layout.rois + 2]), static_cast<const float *>(params[layout.rois + 3]),
          *static_cast<const int32_t *>(params[layout.rois + 4])};
}

bool check_roi(const RoiInputs &in, const Layout &layout, int64_t r) {
  const float *roi = in.rois + r * 5;
  const int level = in.levels[r];
  const std::string name = "roi " + std::to_string(r);
  switch (roi_align::roi_status(roi, level, layout.num_levels, layout.batch, in.spatial_scales, layout.pooled)) {
    case roi_align::RoiStatus::kPooled:
    case roi_align::RoiStatus::kSkipped:
      return true;
    case roi_align::RoiStatus::kBadLevel:
      return fail(name + " has level " + std::to_string(level) + ", expected -1 or [0, " +
                  std::to_string(layout.num_levels) + ")");
    case roi_align::RoiStatus::kNonFinite:
      return fail(name + " has a non-finite coordinate");
    case roi_align::RoiStatus::kBadBatch:
      return fail(name + " has batch index " + std::to_string(roi[0]) + " outside [0, " +
                  std::to_string(layout.batch) + ")");
    case roi_align::RoiStatus::kTooLarge:
      return fail(name + " is implausibly large");
  }
  return false;
}

// Plans every ROI, in parallel; false (with a message) on the first invalid ROI.
bool plan_rois(const RoiInputs &in, const Layout &layout, std::vector<RoiPlan> *plans) {
  if (in.sampling_ratio < 0) return fail("sampling_ratio must be >= 0");
  for (int64_t r = 0; r < layout.num_rois; ++r)
    if (!check_roi(in, layout, r)) return false;
  plans->resize(layout.num_rois);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < layout.num_rois; ++r) (*plans)[r] = plan_roi(in, layout, r);
  return true;
}

// dst[k] += sum of weight * plane[index][lo + k] over the taps [t, end), two taps per pass over dst.
void add_weighted_rows(const AxisTaps &taps, int t, int end, const float *plane, int64_t width, int lo, int n,
                       float *__restrict dst) {
  for (; t + 1 < end; t += 2) {
    const float w0 = taps.weight[t], w1 = taps.weight[t + 1];
    const float *__restrict src0 = plane + taps.index[t] * width + lo;
    const float *__restrict src1 = plane + taps.index[t + 1] * width + lo;
    for (int k = 0; k < n; ++k) dst[k] += w0 * src0[k] + w1 * src1[k];
  }
  if (t < end) {
    const float w = taps.weight[t];
    const float *__restrict src = plane + taps.index[t] * width + lo;
    for (int k = 0; k < n; ++k) dst[k] += w * src[k];
  }
}

// (P, P) bins of one ROI from one (H, W) channel plane; rows: scratch of P * (hi - lo + 1) floats.
void pool_plane(const RoiPlan &plan, const float *plane, int64_t width, int pooled, float *rows, float *out) {
  const int lo = plan.x.lo;
  const int n = std::max(plan.x.hi - lo + 1, 0);
  for (int ph = 0; ph < pooled; ++ph) {
    std::fill(rows + ph * n, rows + (ph + 1) * n, 0.f);
    add_weighted_rows(plan.y, plan.y.begin[ph], plan.y.begin[ph + 1], plane, width, lo, n, rows + ph * n);
  }
  // A whole column of bins per x tap: P independent sums rather than one dependent chain per bin.
  for (int pw = 0; pw < pooled; ++pw) {
    for (int ph = 0; ph < pooled; ++ph) out[ph * pooled + pw] = 0.f;
    for (int t = plan.x.begin[pw]; t < plan.x.begin[pw + 1]; ++t) {
      const float w = plan.x.weight[t];
      const float *column = rows + (plan.x.index[t] - lo);
      for (int ph = 0; ph < pooled; ++ph) out[ph * pooled + pw] += w * column[ph * n];
    }
    for (int ph = 0; ph < pooled; ++ph) out[ph * pooled + pw] /= plan.count;
  }
}

// Adjoint of pool_plane: adds the (P, P) bin gradients of one ROI into one (H, W) plane gradient;
// row: scratch of hi - lo + 1 floats.
void scatter_plane(const RoiPlan &plan, const float *bins_grad, int64_t width, int pooled, float *row,
                   float *plane_grad) {
  const int lo = plan.x.lo;
  const int n = plan.x.hi - lo + 1;
  if (n <= 0) return;
  for (int ph = 0; ph < pooled; ++ph) {
    std::fill(row, row + n, 0.f);
    for (int pw = 0; pw < pooled; ++pw) {
      const float g = bins_grad[ph * pooled + pw] / plan.count;
      for (int t = plan.x.begin[pw]; t < plan.x.begin[pw + 1]; ++t) row[plan.x.index[t] - lo] += plan.x.weight[t] * g;
    }
    for (int t = plan.y.begin[ph]; t < plan.y.begin[ph + 1]; ++t) {
      const float w = plan.y.weight[t];
      const float *__restrict src = row;
      float *__restrict dst = plane_grad + plan.y.index[t] * width + lo;
      for (int k = 0; k < n; ++k) dst[k] += w * src[k];
    }
  }
}

int64_t max_width(const Layout &layout) { return *std::max_element(layout.widths.begin(), layout.widths.end()); }

bool forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *) {
  Layout layout;
  if (!roi_align::forward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  const RoiInputs in = read_roi_inputs(params, layout);
  std::vector<RoiPlan> plans;
  if (!plan_rois(in, layout, &plans)) return false;
  float *output = static_cast<float *>(params[layout.pooled_at]);
  const int pooled = layout.pooled;
  const int64_t channels = layout.channels, num_rois = layout.num_rois;
  const int64_t bins = static_cast<int64_t>(pooled) * pooled;
  // Work items are (block of channels, ROI) with the ROI varying fastest: consecutive items read the same
  // few channel planes, which stay in cache, and each writes one contiguous run of the output.
  const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  const int64_t scratch = max_width(layout) * pooled;
#pragma omp parallel
  {
    std::vector<float> rows(scratch);
#pragma omp for schedule(dynamic, 4)
    for (int64_t item = 0; item < blocks * num_rois; ++item) {
      const int64_t r = item % num_rois;
      const int64_t first = item / num_rois * kChannelBlock, last = std::min(first + kChannelBlock, channels);
      const RoiPlan &plan = plans[r];
      float *bins_out = output + (r * channels + first) * bins;
      if (plan.level < 0) {
        std::fill_n(bins_out, (last - first) * bins, 0.f);
        continue;
      }
      const int64_t height = layout.heights[plan.level], width = layout.widths[plan.level];
      const float *planes = static_cast<const float *>(params[layout.features + plan.level]) +
                            plan.batch * channels * height * width;
      for (int64_t c = first; c < last; ++c)
        pool_plane(plan, planes + c * height * width, width, pooled, rows.data(), bins_out + (c - first) * bins);
    }
  }
  return true;
}

// Each thread owns whole (level, channel) gradient planes, so the accumulation is race-free.
bool backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *) {
  Layout layout;
  if (!roi_align::backward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  const RoiInputs in = read_roi_inputs(params, layout);
  std::vector<RoiPlan> plans;
  if (!plan_rois(in, layout, &plans)) return false;
  const float *grad_out = static_cast<const float *>(params[layout.pooled_at]);
  const int pooled = layout.pooled;
  const int64_t channels = layout.channels;
  const int64_t bins = static_cast<int64_t>(pooled) * pooled;
  const int64_t scratch = max_width(layout);
#pragma omp parallel
  {
    std::vector<float> row(scratch);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < layout.num_levels * channels; ++item) {
      const int level = static_cast<int>(item / channels);
      const int64_t c = item % channels;
      const int64_t height = layout.heights[level], width = layout.widths[level];
      float *grad = static_cast<float *>(params[layout.grads + level]);
      for (int64_t b = 0; b < layout.batch; ++b)
        std::fill_n(grad + (b * channels + c) * height * width, height * width, 0.f);
      for (int64_t r = 0; r < layout.num_rois; ++r) {
        const RoiPlan &plan = plans[r];
        if (plan.level != level) continue;
        scatter_plane(plan, grad_out + (r * channels + c) * bins, width, pooled, row.data(),
                      grad + (plan.batch * channels + c) * height * width);
      }
    }
  }
  return true;
}

}  // namespace

AOT_ENTRY_POINT(RoiAlignV2Forward, roi_align::kKernel, forward)
AOT_ENTRY_POINT(RoiAlignV2Backward, roi_align::kKernel, backward)
