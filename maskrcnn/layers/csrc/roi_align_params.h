// ROIAlignV2's AOT parameters as MindSpore passes them, checked from their shapes and dtypes alone (host arrays;
// the data may live on the GPU), for the CPU kernels and the GPU entry points alike:
//   forward:  L feature maps (N, C, H_l, W_l), rois (R, 5), levels (R,), extents (N, 2), spatial_scales (L,),
//             sampling_ratio (1,), then the output (R, C, P, P);
//   backward: the output gradient (R, C, P, P), rois, levels, extents, spatial_scales, sampling_ratio, the L feature
//             maps (for their shapes), then the L feature gradients (N, C, H_l, W_l).
// extents: each image's (H, W) input extent in pixels; a level's cells beyond it do not exist for the image
// (roi_align::cells_within).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "aot_kernel.h"

namespace roi_align {

constexpr char kKernel[] = "ROIAlignV2";
constexpr int kNumRoiInputs = 5;  // rois, levels, extents, spatial_scales, sampling_ratio

// Where each parameter is, and the sizes they agree on.
struct Layout {
  int num_levels = 0;
  int features = 0;   // first of the L feature maps
  int rois = 0;       // then levels, extents, spatial_scales, sampling_ratio
  int pooled_at = 0;  // the (R, C, P, P) output (forward) or output gradient (backward)
  int grads = -1;     // first of the L feature gradients (backward)
  int64_t batch = 0, channels = 0, num_rois = 0;
  int pooled = 0;
  std::vector<int64_t> heights, widths;
};

inline bool fail(const std::string &reason) { return aot::fail(kKernel, reason); }

inline bool check_inputs(const int *ndims, int64_t **shapes, const char **dtypes, Layout *layout) {
  using aot::is_dtype;
  for (int l = 0; l < layout->num_levels; ++l) {
    const int i = layout->features + l;
    if (ndims[i] != 4 || !is_dtype(dtypes[i], "float32")) return fail("feature maps must be float32 (N, C, H, W)");
    if (l == 0) {
      layout->batch = shapes[i][0];
      layout->channels = shapes[i][1];
    } else if (shapes[i][0] != layout->batch || shapes[i][1] != layout->channels) {
      return fail("all feature levels must have the same batch size and channel count");
    }
    if (shapes[i][2] < 1 || shapes[i][3] < 1) return fail("feature maps must not be empty");
    layout->heights.push_back(shapes[i][2]);
    layout->widths.push_back(shapes[i][3]);
  }
  const int rois = layout->rois, levels = rois + 1, extents = rois + 2, scales = rois + 3, ratio = rois + 4;
  if (ndims[rois] != 2 || shapes[rois][1] != 5 || !is_dtype(dtypes[rois], "float32"))
    return fail("rois must be float32 (R, 5)");
  if (ndims[levels] != 1 || shapes[levels][0] != shapes[rois][0] || !is_dtype(dtypes[levels], "int32"))
    return fail("levels must be int32 (R,)");
  if (ndims[extents] != 2 || shapes[extents][0] != layout->batch || shapes[extents][1] != 2 ||
      !is_dtype(dtypes[extents], "int32"))
    return fail("extents must be int32 (N, 2)");
  if (ndims[scales] != 1 || shapes[scales][0] != layout->num_levels || !is_dtype(dtypes[scales], "float32"))
    return fail("spatial_scales must be float32 with one value per feature level");
  if (ndims[ratio] != 1 || shapes[ratio][0] != 1 || !is_dtype(dtypes[ratio], "int32"))
    return fail("sampling_ratio must be int32 (1,)");
  layout->num_rois = shapes[rois][0];
  const int p = layout->pooled_at;
  if (ndims[p] != 4 || shapes[p][0] != layout->num_rois || shapes[p][1] != layout->channels ||
      shapes[p][2] != shapes[p][3] || !is_dtype(dtypes[p], "float32"))
    return fail("the pooled output and its gradient must be float32 (R, C, P, P)");
  layout->pooled = static_cast<int>(shapes[p][2]);
  return true;
}

inline bool forward_layout(int nparam, const int *ndims, int64_t **shapes, const char **dtypes, Layout *layout) {
  layout->num_levels = nparam - kNumRoiInputs - 1;
  if (layout->num_levels < 1) return fail("expected at least one feature level");
  layout->features = 0;
  layout->rois = layout->num_levels;
  layout->pooled_at = nparam - 1;
  return check_inputs(ndims, shapes, dtypes, layout);
}

inline bool backward_layout(int nparam, const int *ndims, int64_t **shapes, const char **dtypes, Layout *layout) {
  layout->num_levels = (nparam - kNumRoiInputs - 1) / 2;
  if (layout->num_levels < 1 || nparam != kNumRoiInputs + 1 + 2 * layout->num_levels)
    return fail("expected the output gradient, 5 ROI inputs, L feature maps and L feature gradients");
  layout->pooled_at = 0;
  layout->rois = 1;
  layout->features = kNumRoiInputs + 1;
  layout->grads = layout->features + layout->num_levels;
  if (!check_inputs(ndims, shapes, dtypes, layout)) return false;
  for (int l = 0; l < layout->num_levels; ++l) {
    const int grad = layout->grads + l;
    if (ndims[grad] != 4 || !aot::is_dtype(dtypes[grad], "float32") ||
        !std::equal(shapes[grad], shapes[grad] + 4, shapes[layout->features + l]))
      return fail("feature gradients must be float32 with the shapes of the feature maps");
  }
  return true;
}

}  // namespace roi_align
