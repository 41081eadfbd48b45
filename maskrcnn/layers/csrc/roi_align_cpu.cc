// ROIAlignV2 (detectron2 ROIAlign with aligned=True, i.e. torchvision roi_align semantics) over several
// feature levels, as MindSpore AOT CPU kernels (ops.Custom(func_type="aot")).
//
// The sampling grid of a bin is the Cartesian product of its y and x sample coordinates, and the
// bilinear weight of a sample factors into a y weight times an x weight (an out-of-map sample is zero
// along either axis). So each ROI is planned once as two lists of (feature index, weight) taps per
// bin, one per axis, shared by all channels, and a bin is
//     out[ph][pw] = sum_{x taps of pw} wx * (sum_{y taps of ph} wy * F[y][x]) / count
// whose inner sum runs over contiguous feature rows.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "aot_kernel.h"

namespace {

// Inputs shared by the forward and backward kernels.
constexpr int kNumRoiInputs = 4;  // rois (R, 5), levels (R,), spatial_scales (L,), sampling_ratio (1,)
// Beyond this many samples per bin side a box is certainly malformed (coordinates ~1e8 pixels).
constexpr float kMaxGrid = 1 << 20;
// Channels per forward work item.
constexpr int64_t kChannelBlock = 8;

// Taps of one axis of one ROI: bin p owns taps [begin[p], begin[p + 1]), each a feature row or column
// index with the summed weight of all the bin's samples that touch it.
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
  const float *spatial_scales;
  int sampling_ratio;
  int64_t num_rois;
};

struct FeatureGeometry {
  int64_t batch = 0, channels = 0;
  std::vector<int64_t> heights, widths;
};

void add_tap(AxisTaps *taps, size_t bin_first_tap, int index, float weight) {
  if (taps->index.size() > bin_first_tap && taps->index.back() == index) {
    taps->weight.back() += weight;
    return;
  }
  taps->index.push_back(index);
  taps->weight.push_back(weight);
}

// Samples at start + p * bin_size + (i + 0.5) * bin_size / grid for bin p, sample i (torchvision's
// float expression order); a sample outside [-1, size] is zero, one below 0 reads index 0, one at or
// beyond size - 1 reads index size - 1.
AxisTaps plan_axis(float start, float bin_size, int grid, int pooled, int size) {
  AxisTaps taps;
  taps.begin.resize(pooled + 1);
  for (int p = 0; p < pooled; ++p) {
    const size_t first = taps.index.size();
    taps.begin[p] = static_cast<int>(first);
    for (int i = 0; i < grid; ++i) {
      float v = start + p * bin_size + static_cast<float>(i + .5f) * bin_size / static_cast<float>(grid);
      if (!(v >= -1.f && v <= static_cast<float>(size))) continue;
      if (v <= 0.f) v = 0.f;
      int low = static_cast<int>(v);
      int high = low + 1;
      if (low >= size - 1) {
        low = high = size - 1;
        v = static_cast<float>(low);
      }
      const float frac = v - static_cast<float>(low);
      add_tap(&taps, first, low, 1.f - frac);
      add_tap(&taps, first, high, frac);
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

// Adaptive sampling grid: ceil(extent / pooled) samples per bin side, none for an empty extent.
int adaptive_grid(float extent, int pooled) {
  const float grid = std::ceil(extent / static_cast<float>(pooled));
  return grid >= 1.f ? static_cast<int>(grid) : 0;
}

RoiPlan plan_roi(const RoiInputs &in, const FeatureGeometry &geometry, int pooled, int64_t r) {
  RoiPlan plan;
  plan.level = in.levels[r];
  if (plan.level < 0) return plan;
  const float *roi = in.rois + r * 5;
  plan.batch = static_cast<int>(roi[0]);
  const float scale = in.spatial_scales[plan.level];
  const float start_x = roi[1] * scale - 0.5f;
  const float start_y = roi[2] * scale - 0.5f;
  const float extent_x = (roi[3] * scale - 0.5f) - start_x;
  const float extent_y = (roi[4] * scale - 0.5f) - start_y;
  const int grid_y = in.sampling_ratio > 0 ? in.sampling_ratio : adaptive_grid(extent_y, pooled);
  const int grid_x = in.sampling_ratio > 0 ? in.sampling_ratio : adaptive_grid(extent_x, pooled);
  plan.count = static_cast<float>(std::max(grid_y * grid_x, 1));
  plan.y = plan_axis(start_y, extent_y / static_cast<float>(pooled), grid_y, pooled,
                     static_cast<int>(geometry.heights[plan.level]));
  plan.x = plan_axis(start_x, extent_x / static_cast<float>(pooled), grid_x, pooled,
                     static_cast<int>(geometry.widths[plan.level]));
  return plan;
}

constexpr char kKernel[] = "ROIAlignV2";

bool fail(const std::string &reason) { return aot::fail(kKernel, reason); }

using aot::is_dtype;

// Checks the ROI inputs at params[first], .. and the (N, C, H, W) feature maps at params[features].
bool read_inputs(int num_levels, int first, int features, void **params, const int *ndims, int64_t **shapes,
                 const char **dtypes, RoiInputs *in, FeatureGeometry *geometry) {
  for (int l = 0; l < num_levels; ++l) {
    const int i = features + l;
    if (ndims[i] != 4 || !is_dtype(dtypes[i], "float32")) return fail("feature maps must be float32 (N, C, H, W)");
    if (l == 0) {
      geometry->batch = shapes[i][0];
      geometry->channels = shapes[i][1];
    } else if (shapes[i][0] != geometry->batch || shapes[i][1] != geometry->channels) {
      return fail("all feature levels must have the same batch size and channel count");
    }
    if (shapes[i][2] < 1 || shapes[i][3] < 1) return fail("feature maps must not be empty");
    geometry->heights.push_back(shapes[i][2]);
    geometry->widths.push_back(shapes[i][3]);
  }
  const int rois = first, levels = first + 1, scales = first + 2, ratio = first + 3;
  if (ndims[rois] != 2 || shapes[rois][1] != 5 || !is_dtype(dtypes[rois], "float32"))
    return fail("rois must be float32 (R, 5)");
  if (ndims[levels] != 1 || shapes[levels][0] != shapes[rois][0] || !is_dtype(dtypes[levels], "int32"))
    return fail("levels must be int32 (R,)");
  if (ndims[scales] != 1 || shapes[scales][0] != num_levels || !is_dtype(dtypes[scales], "float32"))
    return fail("spatial_scales must be float32 with one value per feature level");
  if (ndims[ratio] != 1 || shapes[ratio][0] != 1 || !is_dtype(dtypes[ratio], "int32"))
    return fail("sampling_ratio must be int32 (1,)");
  in->rois = static_cast<const float *>(params[rois]);
  in->levels = static_cast<const int32_t *>(params[levels]);
  in->spatial_scales = static_cast<const float *>(params[scales]);
  in->sampling_ratio = *static_cast<const int32_t *>(params[ratio]);
  in->num_rois = shapes[rois][0];
  return true;
}

bool check_roi(const RoiInputs &in, const FeatureGeometry &geometry, int num_levels, int pooled, int64_t r) {
  const int level = in.levels[r];
  const std::string name = "roi " + std::to_string(r);
  if (level < -1 || level >= num_levels)
    return fail(name + " has level " + std::to_string(level) + ", expected -1 or [0, " +
                std::to_string(num_levels) + ")");
  if (level < 0) return true;
  const float *roi = in.rois + r * 5;
  for (int k = 0; k < 5; ++k)
    if (!std::isfinite(roi[k])) return fail(name + " has a non-finite coordinate");
  if (roi[0] < 0.f || roi[0] >= static_cast<float>(geometry.batch))
    return fail(name + " has batch index " + std::to_string(roi[0]) + " outside [0, " +
                std::to_string(geometry.batch) + ")");
  const float scale = in.spatial_scales[level];
  const float extent = std::max(std::fabs(roi[3] - roi[1]), std::fabs(roi[4] - roi[2])) * scale;
  if (!(extent / static_cast<float>(pooled) < kMaxGrid)) return fail(name + " is implausibly large");
  return true;
}

// Plans every ROI, in parallel; false (with a message) on the first invalid ROI.
bool plan_rois(const RoiInputs &in, const FeatureGeometry &geometry, int num_levels, int pooled,
               std::vector<RoiPlan> *plans) {
  if (in.sampling_ratio < 0) return fail("sampling_ratio must be >= 0");
  for (int64_t r = 0; r < in.num_rois; ++r)
    if (!check_roi(in, geometry, num_levels, pooled, r)) return false;
  plans->resize(in.num_rois);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < in.num_rois; ++r) (*plans)[r] = plan_roi(in, geometry, pooled, r);
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

int64_t max_width(const FeatureGeometry &geometry) {
  return *std::max_element(geometry.widths.begin(), geometry.widths.end());
}

// params: L feature maps (N, C, H_l, W_l), rois, levels, spatial_scales, sampling_ratio, output (R, C, P, P).
bool forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes) {
  const int num_levels = nparam - kNumRoiInputs - 1;
  if (num_levels < 1) return fail("expected at least one feature level");
  RoiInputs in;
  FeatureGeometry geometry;
  if (!read_inputs(num_levels, num_levels, 0, params, ndims, shapes, dtypes, &in, &geometry)) return false;
  const int out = nparam - 1;
  const int64_t channels = geometry.channels;
  if (ndims[out] != 4 || shapes[out][0] != in.num_rois || shapes[out][1] != channels ||
      shapes[out][2] != shapes[out][3] || !is_dtype(dtypes[out], "float32"))
    return fail("output must be float32 (R, C, P, P)");
  const int pooled = static_cast<int>(shapes[out][2]);
  std::vector<RoiPlan> plans;
  if (!plan_rois(in, geometry, num_levels, pooled, &plans)) return false;
  float *output = static_cast<float *>(params[out]);
  const int64_t bins = static_cast<int64_t>(pooled) * pooled;
  // Work items are (block of channels, ROI) with the ROI varying fastest: consecutive items read the same
  // few channel planes, which stay in cache, and each writes one contiguous run of the output.
  const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  const int64_t scratch = max_width(geometry) * pooled;
#pragma omp parallel
  {
    std::vector<float> rows(scratch);
#pragma omp for schedule(dynamic, 4)
    for (int64_t item = 0; item < blocks * in.num_rois; ++item) {
      const int64_t r = item % in.num_rois;
      const int64_t first = item / in.num_rois * kChannelBlock, last = std::min(first + kChannelBlock, channels);
      const RoiPlan &plan = plans[r];
      float *bins_out = output + (r * channels + first) * bins;
      if (plan.level < 0) {
        std::fill_n(bins_out, (last - first) * bins, 0.f);
        continue;
      }
      const int64_t height = geometry.heights[plan.level], width = geometry.widths[plan.level];
      const float *planes = static_cast<const float *>(params[plan.level]) + plan.batch * channels * height * width;
      for (int64_t c = first; c < last; ++c)
        pool_plane(plan, planes + c * height * width, width, pooled, rows.data(), bins_out + (c - first) * bins);
    }
  }
  return true;
}

// params: output gradient (R, C, P, P), rois, levels, spatial_scales, sampling_ratio, the L feature maps (read
// for their shapes only), then the L feature gradients (N, C, H_l, W_l). Each thread owns whole (level,
// channel) gradient planes, so the accumulation is race-free.
bool backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes) {
  const int num_levels = (nparam - kNumRoiInputs - 1) / 2;
  if (num_levels < 1 || nparam != kNumRoiInputs + 1 + 2 * num_levels)
    return fail("expected the output gradient, 4 ROI inputs, L feature maps and L feature gradients");
  RoiInputs in;
  FeatureGeometry geometry;
  const int features = kNumRoiInputs + 1;
  if (!read_inputs(num_levels, 1, features, params, ndims, shapes, dtypes, &in, &geometry)) return false;
  const int64_t channels = geometry.channels;
  if (ndims[0] != 4 || shapes[0][0] != in.num_rois || shapes[0][1] != channels || shapes[0][2] != shapes[0][3] ||
      !is_dtype(dtypes[0], "float32"))
    return fail("output gradient must be float32 (R, C, P, P)");
  for (int l = 0; l < num_levels; ++l) {
    const int grad = features + num_levels + l;
    if (ndims[grad] != 4 || !is_dtype(dtypes[grad], "float32") ||
        !std::equal(shapes[grad], shapes[grad] + 4, shapes[features + l]))
      return fail("feature gradients must be float32 with the shapes of the feature maps");
  }
  const int pooled = static_cast<int>(shapes[0][2]);
  std::vector<RoiPlan> plans;
  if (!plan_rois(in, geometry, num_levels, pooled, &plans)) return false;
  const float *grad_out = static_cast<const float *>(params[0]);
  const int64_t bins = static_cast<int64_t>(pooled) * pooled;
  const int64_t scratch = max_width(geometry);
#pragma omp parallel
  {
    std::vector<float> row(scratch);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < num_levels * channels; ++item) {
      const int level = static_cast<int>(item / channels);
      const int64_t c = item % channels;
      const int64_t height = geometry.heights[level], width = geometry.widths[level];
      float *grad = static_cast<float *>(params[features + num_levels + level]);
      for (int64_t b = 0; b < geometry.batch; ++b)
        std::fill_n(grad + (b * channels + c) * height * width, height * width, 0.f);
      for (int64_t r = 0; r < in.num_rois; ++r) {
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

extern "C" int RoiAlignV2Forward(int nparam, void **params, int *ndims, int64_t **shapes,
                                 const char **dtypes, void *, void *) {
  return aot::run(kKernel, forward, nparam, params, ndims, shapes, dtypes);
}

extern "C" int RoiAlignV2Backward(int nparam, void **params, int *ndims, int64_t **shapes,
                                  const char **dtypes, void *, void *) {
  return aot::run(kKernel, backward, nparam, params, ndims, shapes, dtypes);
}
