// ROIAlignV2 over several feature levels as CUDA kernels, compiled at run time by NVRTC (maskrcnn/layers/build.py,
// with --fmad=false) and launched by the AOT entry points of roi_align_gpu.cc. One thread per pooled element
// (ROI, channel, bin); the per-ROI and per-bin arithmetic is roi_align.h, shared with the CPU kernels, and a bin is
// summed in the CPU kernel's order, so both devices give the same floats.
//
// ROIs are read on the device: one with a level outside [0, L), a batch index outside [0, N), a non-finite or an
// implausibly large coordinate is not pooled (zero output, no gradient) rather than reported as on the CPU.
#include "roi_align.h"

using roi_align::LevelMaps;

// Where the thread's pooled element (R, C, P, P) is and whether its ROI is pooled.
struct Element {
  int64_t roi;
  int64_t channel;
  int ph, pw, level;
  bool pooled;
};

__device__ Element locate(int64_t i, int64_t channels, int pooled, const float *rois, const int *levels,
                          int num_levels, int64_t batch, const float *spatial_scales) {
  Element e;
  e.pw = static_cast<int>(i % pooled);
  e.ph = static_cast<int>(i / pooled % pooled);
  e.channel = i / pooled / pooled % channels;
  e.roi = i / pooled / pooled / channels;
  e.level = levels[e.roi];
  e.pooled = roi_align::roi_status(rois + e.roi * 5, e.level, num_levels, batch, spatial_scales, pooled) ==
             roi_align::RoiStatus::kPooled;
  return e;
}

extern "C" __global__ void roi_align_forward(LevelMaps features, int num_levels, int64_t batch, int64_t channels,
                                             const float *rois, const int *levels, const int *extents,
                                             const float *spatial_scales,
                                             const int *sampling_ratio, int64_t num_rois, int pooled, float *out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= num_rois * channels * pooled * pooled) return;
  const Element e = locate(i, channels, pooled, rois, levels, num_levels, batch, spatial_scales);
  if (!e.pooled) {
    out[i] = 0.f;
    return;
  }
  const roi_align::RoiGeometry g =
      roi_align::roi_geometry(rois + e.roi * 5, spatial_scales[e.level], *sampling_ratio, pooled);
  const int height = features.height[e.level], width = features.width[e.level];
  const float *plane = features.data[e.level] + (g.batch * channels + e.channel) * height * width;
  const int rows = roi_align::cells_within(extents[2 * g.batch], spatial_scales[e.level], height);
  const int columns = roi_align::cells_within(extents[2 * g.batch + 1], spatial_scales[e.level], width);
  // The CPU kernel's order: each x tap's column sum over the y taps, two taps per step, then the x taps in turn.
  float value = 0.f;
  roi_align::BinTaps x_taps(g.start_x, g.bin_w, g.grid_x, columns, e.pw);
  int x, y0, y1;
  float wx, wy0, wy1;
  while (x_taps.next(&x, &wx)) {
    float column = 0.f;
    roi_align::BinTaps y_taps(g.start_y, g.bin_h, g.grid_y, rows, e.ph);
    while (y_taps.next(&y0, &wy0)) {
      if (y_taps.next(&y1, &wy1)) {
        column += wy0 * plane[y0 * width + x] + wy1 * plane[y1 * width + x];
      } else {
        column += wy0 * plane[y0 * width + x];
      }
    }
    value += wx * column;
  }
  out[i] = value / g.count;
}

// Adds each pooled element's gradient into the feature gradients (zeroed by the caller), atomically: the bins of
// different ROIs and of neighbouring bins share feature pixels.
extern "C" __global__ void roi_align_backward(LevelMaps grads, int num_levels, int64_t batch, int64_t channels,
                                              const float *rois, const int *levels, const int *extents,
                                              const float *spatial_scales,
                                              const int *sampling_ratio, int64_t num_rois, int pooled,
                                              const float *grad_out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= num_rois * channels * pooled * pooled) return;
  const Element e = locate(i, channels, pooled, rois, levels, num_levels, batch, spatial_scales);
  if (!e.pooled) return;
  const roi_align::RoiGeometry g =
      roi_align::roi_geometry(rois + e.roi * 5, spatial_scales[e.level], *sampling_ratio, pooled);
  const int height = grads.height[e.level], width = grads.width[e.level];
  float *plane = grads.data[e.level] + (g.batch * channels + e.channel) * height * width;
  const int rows = roi_align::cells_within(extents[2 * g.batch], spatial_scales[e.level], height);
  const int columns = roi_align::cells_within(extents[2 * g.batch + 1], spatial_scales[e.level], width);
  const float grad = grad_out[i] / g.count;
  roi_align::BinTaps x_taps(g.start_x, g.bin_w, g.grid_x, columns, e.pw);
  int x, y;
  float wx, wy;
  while (x_taps.next(&x, &wx)) {
    const float grad_x = wx * grad;
    roi_align::BinTaps y_taps(g.start_y, g.bin_h, g.grid_y, rows, e.ph);
    while (y_taps.next(&y, &wy)) atomicAdd(plane + y * width + x, wy * grad_x);
  }
}
