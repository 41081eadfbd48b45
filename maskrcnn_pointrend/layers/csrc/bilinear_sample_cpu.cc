// Bilinear sampling of channels-last feature maps at arbitrary points, as MindSpore AOT CPU kernels;
// bilinear_sample.h holds the per-point arithmetic this shares with the CUDA kernels, bilinear_sample_params.h the
// parameter layout. With channels last, a sample reads four contiguous rows of C floats, which is what makes it
// fast; MindSpore's grid_sample on NCHW maps touches 4 * C scattered cache lines per point.
//
// BilinearSample:        out = sample(maps)
// BilinearSampleAddRelu: out = relu(base + sample(maps) + bias), one pass over the (P, C) activations instead of
//                        three separate elementwise ops (an MLP layer whose input includes sampled features).
#include <algorithm>
#include <cstdint>
#include <utility>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bilinear_sample.h"
#include "bilinear_sample_params.h"

namespace {

using bilinear_sample::Corners;
using bilinear_sample::fail;
using bilinear_sample::Layout;

// The data of features (N, H, W, C), points (P, 2) (u, v) and batch index (P,) with their sizes.
struct Samples {
  const float *features;
  const float *points;
  const int32_t *batch;
  Layout layout;
};

// Checks the parameters with `check_layout` (one of bilinear_sample_params.h), then reads features, points and batch
// index; false (after saying why) when the parameters do not fit or a batch index is out of range.
bool read_samples(bool (*check_layout)(int, const int *, int64_t **, const char **, Layout *), int nparam,
                  void **params, const int *ndims, int64_t **shapes, const char **dtypes, Samples *in) {
  Layout &layout = in->layout;
  if (!check_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  in->features = static_cast<const float *>(params[layout.features]);
  in->points = static_cast<const float *>(params[layout.features + 1]);
  in->batch = static_cast<const int32_t *>(params[layout.features + 2]);
  for (int64_t p = 0; p < layout.num_points; ++p)
    if (in->batch[p] < 0 || in->batch[p] >= layout.num_maps) return fail("batch index out of range");
  return true;
}

Corners corners(const Samples &in, int64_t p) {
  const Layout &l = in.layout;
  return bilinear_sample::corners(in.points[2 * p], in.points[2 * p + 1], in.batch[p], l.num_maps, l.height, l.width,
                                  l.channels);
}

bool forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *) {
  Samples in;
  if (!read_samples(bilinear_sample::forward_layout, nparam, params, ndims, shapes, dtypes, &in)) return false;
  const Layout &layout = in.layout;
  float *output = static_cast<float *>(params[3]);
  const int64_t channels = layout.channels;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < layout.num_points; ++p) {
    const Corners c = corners(in, p);
    float *out = output + p * channels;
    for (int64_t ch = 0; ch < channels; ++ch) out[ch] = bilinear_sample::sample_channel(in.features, c, ch);
  }
  return true;
}

// Within a parallel region: the channels [first, last) of `channels` that this thread owns. Threads that each
// accumulate into their own channels need no atomics.
std::pair<int64_t, int64_t> this_threads_channels(int64_t channels) {
#ifdef _OPENMP
  const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
#else
  const int64_t threads = 1, thread = 0;
#endif
  return {channels * thread / threads, channels * (thread + 1) / threads};
}

// Scatter-adds grad_out (P, C), scaled by each point's corner weights, into grad (N, H, W, C) (zeroed first).
// Each thread owns a range of channels of the whole gradient.
void scatter_samples(const Samples &in, const float *grad_out, float *grad) {
  const Layout &l = in.layout;
  const int64_t channels = l.channels;
  std::fill_n(grad, l.num_maps * l.height * l.width * channels, 0.f);
#pragma omp parallel
  {
    const auto [first, last] = this_threads_channels(channels);
    for (int64_t p = 0; p < l.num_points; ++p) {
      const Corners c = corners(in, p);
      const float *g = grad_out + p * channels;
      for (int k = 0; k < 4; ++k) {
        if (c.weight[k] == 0.f) continue;
        float *target = grad + c.offset[k];
        for (int64_t ch = first; ch < last; ++ch) target[ch] += c.weight[k] * g[ch];
      }
    }
  }
}

bool backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *) {
  Samples in;
  if (!read_samples(bilinear_sample::backward_layout, nparam, params, ndims, shapes, dtypes, &in)) return false;
  scatter_samples(in, static_cast<const float *>(params[0]), static_cast<float *>(params[4]));
  return true;
}

bool add_relu_forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *) {
  Samples in;
  if (!read_samples(bilinear_sample::add_relu_forward_layout, nparam, params, ndims, shapes, dtypes, &in)) return false;
  const Layout &layout = in.layout;
  const float *base = static_cast<const float *>(params[0]), *bias = static_cast<const float *>(params[4]);
  float *output = static_cast<float *>(params[5]);
  const int64_t channels = layout.channels;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < layout.num_points; ++p) {
    const Corners c = corners(in, p);
    const float *b = base + p * channels;
    float *out = output + p * channels;
    for (int64_t ch = 0; ch < channels; ++ch)
      out[ch] = bilinear_sample::add_relu(b[ch], bilinear_sample::sample_channel(in.features, c, ch), bias[ch]);
  }
  return true;
}

bool add_relu_backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *) {
  Samples in;
  if (!read_samples(bilinear_sample::add_relu_backward_layout, nparam, params, ndims, shapes, dtypes, &in))
    return false;
  const Layout &layout = in.layout;
  const float *grad_out = static_cast<const float *>(params[0]), *output = static_cast<const float *>(params[1]);
  float *grad_base = static_cast<float *>(params[5]), *grad_bias = static_cast<float *>(params[7]);
  const int64_t channels = layout.channels, count = layout.num_points * channels;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) grad_base[i] = output[i] > 0.f ? grad_out[i] : 0.f;
  std::fill_n(grad_bias, channels, 0.f);
#pragma omp parallel
  {
    const auto [first, last] = this_threads_channels(channels);
    for (int64_t p = 0; p < layout.num_points; ++p)
      for (int64_t ch = first; ch < last; ++ch) grad_bias[ch] += grad_base[p * channels + ch];
  }
  scatter_samples(in, grad_base, static_cast<float *>(params[6]));
  return true;
}

}  // namespace

AOT_ENTRY_POINT(BilinearSampleForward, bilinear_sample::kKernel, forward)
AOT_ENTRY_POINT(BilinearSampleBackward, bilinear_sample::kKernel, backward)
AOT_ENTRY_POINT(BilinearSampleAddReluForward, bilinear_sample::kKernel, add_relu_forward)
AOT_ENTRY_POINT(BilinearSampleAddReluBackward, bilinear_sample::kKernel, add_relu_backward)
