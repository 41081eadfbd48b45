// ROIAlignV2's AOT entry points on the GPU: the parameters are checked from their shapes and dtypes as on the CPU
// (roi_align_params.h), then the CUDA kernels of roi_align_gpu.cu run on MindSpore's stream. The ROI data stay on
// the device: the kernels themselves skip invalid ROIs (see roi_align_gpu.cu).
#include <cstdint>
#include <string>

#include "cuda_driver.h"
#include "roi_align.h"
#include "roi_align_params.h"

namespace {

using roi_align::Layout;
using roi_align::fail;

// Launches `function` (roi_align_forward or roi_align_backward, which take the same arguments) over every pooled
// element, with the L (N, C, H_l, W_l) maps at params[maps_at], .. (the features, or their gradients); pooled_data
// is the output (forward) or the output gradient (backward).
bool launch(const char *function, void **params, const Layout &layout, int maps_at, void *pooled_data,
            void *stream) {
  if (layout.num_levels > roi_align::kMaxLevels)
    return fail("at most " + std::to_string(roi_align::kMaxLevels) + " feature levels on the GPU");
  roi_align::LevelMaps level_data{};
  for (int l = 0; l < layout.num_levels; ++l) {
    level_data.data[l] = static_cast<float *>(params[maps_at + l]);
    level_data.height[l] = static_cast<int>(layout.heights[l]);
    level_data.width[l] = static_cast<int>(layout.widths[l]);
  }
  int num_levels = layout.num_levels, pooled = layout.pooled;
  int64_t batch = layout.batch, channels = layout.channels, num_rois = layout.num_rois;
  void *rois = params[layout.rois], *levels = params[layout.rois + 1], *extents = params[layout.rois + 2];
  void *scales = params[layout.rois + 3], *ratio = params[layout.rois + 4];
  void *args[] = {&level_data, &num_levels, &batch,    &channels, &rois,       &levels,
                  &extents,    &scales,     &ratio,    &num_rois, &pooled,     &pooled_data};
  const int64_t count = num_rois * channels * pooled * pooled;
  return cuda::launch(roi_align::kKernel, function, cuda::blocks_for(count), {cuda::kThreadsPerBlock, 1, 1}, 0,
                      stream, args);
}

bool forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *stream) {
  Layout layout;
  if (!roi_align::forward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  return launch("roi_align_forward", params, layout, layout.features, params[layout.pooled_at], stream);
}

bool backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *stream) {
  Layout layout;
  if (!roi_align::backward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  for (int l = 0; l < layout.num_levels; ++l) {
    const int64_t size = layout.batch * layout.channels * layout.heights[l] * layout.widths[l];
    if (!cuda::zero(roi_align::kKernel, params[layout.grads + l], size, stream)) return false;
  }
  return launch("roi_align_backward", params, layout, layout.grads, params[layout.pooled_at], stream);
}

}  // namespace

AOT_ENTRY_POINT(RoiAlignV2Forward, roi_align::kKernel, forward)
AOT_ENTRY_POINT(RoiAlignV2Backward, roi_align::kKernel, backward)
