// Bilinear sampling of channels-last maps as CUDA kernels, compiled at run time by NVRTC (maskrcnn/layers/build.py,
// with --fmad=false) and launched by the AOT entry points of bilinear_sample_gpu.cc. One thread per (point,
// channel), consecutive threads reading consecutive channels of a corner's row; the per-point arithmetic is
// bilinear_sample.h, shared with the CPU kernels. Scatter-adds into the feature gradient are atomic (points share
// corners); the caller zeroes what is accumulated into. A point with a batch index outside [0, N) samples zeros
// (the CPU kernels report it).
#include "bilinear_sample.h"

using bilinear_sample::SampleShape;

__device__ bilinear_sample::Corners point_corners(const SampleShape &s, const float *points, const int *batch,
                                                  int64_t p) {
  return bilinear_sample::corners(points[2 * p], points[2 * p + 1], batch[p], s.num_maps, s.height, s.width,
                                  s.channels);
}

__device__ int64_t thread_index() { return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; }

// out (P, C) = the samples.
extern "C" __global__ void bilinear_sample_forward(SampleShape s, const float *features, const float *points,
                                                   const int *batch, float *out) {
  const int64_t i = thread_index();
  if (i >= s.num_points * s.channels) return;
  const bilinear_sample::Corners c = point_corners(s, points, batch, i / s.channels);
  out[i] = bilinear_sample::sample_channel(features, c, i % s.channels);
}

// out (P, C) = relu(base (P, C) + the samples + bias (C,)).
extern "C" __global__ void bilinear_sample_add_relu_forward(SampleShape s, const float *base, const float *features,
                                                            const float *points, const int *batch, const float *bias,
                                                            float *out) {
  const int64_t i = thread_index();
  if (i >= s.num_points * s.channels) return;
  const int64_t ch = i % s.channels;
  const bilinear_sample::Corners c = point_corners(s, points, batch, i / s.channels);
  out[i] = bilinear_sample::add_relu(base[i], bilinear_sample::sample_channel(features, c, ch), bias[ch]);
}

// grad (N, H, W, C) += each point's corner weights times its row of grad_out (P, C).
extern "C" __global__ void bilinear_sample_scatter(SampleShape s, const float *grad_out, const float *points,
                                                   const int *batch, float *grad) {
  const int64_t i = thread_index();
  if (i >= s.num_points * s.channels) return;
  const int64_t ch = i % s.channels;
  const bilinear_sample::Corners c = point_corners(s, points, batch, i / s.channels);
  const float g = grad_out[i];
  for (int k = 0; k < 4; ++k)
    if (c.weight[k] != 0.f) atomicAdd(grad + c.offset[k] + ch, c.weight[k] * g);
}

// grad_base (P, C) = grad_out where the forward output was positive, else 0 (the ReLU's gradient).
extern "C" __global__ void relu_gradient(int64_t count, const float *grad_out, const float *output, float *grad_base) {
  const int64_t i = thread_index();
  if (i < count) grad_base[i] = output[i] > 0.f ? grad_out[i] : 0.f;
}

// sums (C,) += the column sums of rows (P, C): thread (x, y) of the grid sums column x over rows y, y + S, ..
// (S threads along y in all, so a thread adds up ~P / S rows), then adds its total atomically. Consecutive threads
// read consecutive columns of a row.
extern "C" __global__ void column_sums(int64_t num_rows, int64_t channels, const float *rows, float *sums) {
  const int64_t ch = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t slices = static_cast<int64_t>(gridDim.y) * blockDim.y;
  if (ch >= channels) return;
  float sum = 0.f;
  for (int64_t p = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y; p < num_rows; p += slices)
    sum += rows[p * channels + ch];
  atomicAdd(sums + ch, sum);
}
