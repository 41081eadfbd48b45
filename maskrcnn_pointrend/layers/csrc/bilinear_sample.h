// Bilinear sampling of channels-last maps at one point, compiled into both the CPU kernels (bilinear_sample_cpu.cc,
// g++) and the CUDA kernels (bilinear_sample_gpu.cu, NVRTC): grid_sample(align_corners=False, padding_mode="zeros")
// at a point (u, v) in [0, 1] x [0, 1] map coordinates, pixel position x = u * W - 0.5, corners outside the map
// counting as zero.
#pragma once

#include "portable.h"

namespace bilinear_sample {

// The four corners of one sample: offsets (in floats) of their channel rows in the (N, H, W, C) maps, and their
// weights (zero, with offset 0, for corners outside the map).
struct Corners {
  int64_t offset[4];
  float weight[4];
};

PORTABLE Corners corners(float u, float v, int64_t batch, int64_t num_maps, int64_t height, int64_t width,
                         int64_t channels) {
  const float x = u * static_cast<float>(width) - 0.5f;
  const float y = v * static_cast<float>(height) - 0.5f;
  Corners result{};
  if (!portable::is_finite(x) || !portable::is_finite(y) || batch < 0 || batch >= num_maps) return result;
  const float x0f = portable::floor(x), y0f = portable::floor(y);
  const float fx = x - x0f, fy = y - y0f;
  // Clamp far-away points before the integer conversion; anything beyond the map is zero anyway.
  const int64_t x0 = static_cast<int64_t>(portable::clamp(x0f, -2.f, static_cast<float>(width)));
  const int64_t y0 = static_cast<int64_t>(portable::clamp(y0f, -2.f, static_cast<float>(height)));
  const int64_t base = batch * height * width;
  const float wx[2] = {1.f - fx, fx}, wy[2] = {1.f - fy, fy};
  for (int k = 0; k < 4; ++k) {
    const int64_t xi = x0 + (k & 1), yi = y0 + (k >> 1);
    const bool inside = xi >= 0 && xi < width && yi >= 0 && yi < height;
    result.offset[k] = inside ? (base + yi * width + xi) * channels : 0;
    result.weight[k] = inside ? wy[k >> 1] * wx[k & 1] : 0.f;
  }
  return result;
}

// Channel `ch` of the sample whose corners are `c`.
PORTABLE float sample_channel(const float *features, const Corners &c, int64_t ch) {
  return c.weight[0] * features[c.offset[0] + ch] + c.weight[1] * features[c.offset[1] + ch] +
         c.weight[2] * features[c.offset[2] + ch] + c.weight[3] * features[c.offset[3] + ch];
}

// One element of BilinearSampleAddRelu: relu(base + sample + bias).
PORTABLE float add_relu(float base, float sample, float bias) {
  const float v = base + sample + bias;
  return v < 0.f ? 0.f : v;
}

// The CUDA kernels' view of the sampled maps (N, H, W, C) and the P points, passed by value from the host.
struct SampleShape {
  int64_t num_maps, height, width, channels, num_points;
};

}  // namespace bilinear_sample
