// Bilinear sampling of channels-last feature maps at arbitrary points, as MindSpore AOT CPU kernels.
// Semantics of torch.nn.functional.grid_sample(align_corners=False, padding_mode="zeros") for points given in
// [0, 1] x [0, 1] map coordinates: pixel position x = u * W - 0.5, and corners outside the map count as zero.
// With channels last, a sample reads four contiguous rows of C floats, which is what makes it fast; MindSpore's
// grid_sample on NCHW maps touches 4 * C scattered cache lines per point.
//
// BilinearSample:        out = sample(maps)
// BilinearSampleAddRelu: out = relu(base + sample(maps) + bias), one pass over the (P, C) activations instead of
//                        three separate elementwise ops (an MLP layer whose input includes sampled features).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "aot_kernel.h"

namespace {

// features (N, H, W, C) float32, points (P, 2) float32 (u, v), batch index (P,) int32.
struct Inputs {
  const float *features;
  const float *points;
  const int32_t *batch;
  int64_t num_maps, height, width, channels, num_points;
};

// The four corners of one sample with their weights (zero for corners outside the map).
struct Corners {
  int64_t offset[4];
  float weight[4];
};

constexpr char kKernel[] = "bilinear_sample";

bool fail(const std::string &reason) { return aot::fail(kKernel, reason); }

using aot::is_dtype;

// Reads features, points and batch index from params[0..2] (callers pass pointers offset to them).
bool read_inputs(void **params, const int *ndims, int64_t **shapes, const char **dtypes, Inputs *in) {
  if (ndims[0] != 4 || !is_dtype(dtypes[0], "float32")) return fail("features must be float32 (N, H, W, C)");
  if (ndims[1] != 2 || shapes[1][1] != 2 || !is_dtype(dtypes[1], "float32"))
    return fail("points must be float32 (P, 2)");
  if (ndims[2] != 1 || shapes[2][0] != shapes[1][0] || !is_dtype(dtypes[2], "int32"))
    return fail("batch index must be int32 (P,)");
  in->features = static_cast<const float *>(params[0]);
  in->points = static_cast<const float *>(params[1]);
  in->batch = static_cast<const int32_t *>(params[2]);
  in->num_maps = shapes[0][0];
  in->height = shapes[0][1];
  in->width = shapes[0][2];
  in->channels = shapes[0][3];
  in->num_points = shapes[1][0];
  for (int64_t p = 0; p < in->num_points; ++p)
    if (in->batch[p] < 0 || in->batch[p] >= in->num_maps) return fail("batch index out of range");
  return true;
}

float sample_channel(const Inputs &in, const Corners &c, int64_t ch) {
  return c.weight[0] * in.features[c.offset[0] + ch] + c.weight[1] * in.features[c.offset[1] + ch] +
         c.weight[2] * in.features[c.offset[2] + ch] + c.weight[3] * in.features[c.offset[3] + ch];
}

// Row offsets (in floats) and weights of the corners around point p; out-of-map corners get weight 0.
Corners corners(const Inputs &in, int64_t p) {
  const float x = in.points[2 * p] * static_cast<float>(in.width) - 0.5f;
  const float y = in.points[2 * p + 1] * static_cast<float>(in.height) - 0.5f;
  Corners result{};
  if (!std::isfinite(x) || !std::isfinite(y)) return result;
  const float x0f = std::floor(x), y0f = std::floor(y);
  const float fx = x - x0f, fy = y - y0f;
  // Clamp far-away points before the integer conversion; anything beyond the map is zero anyway.
  const int64_t x0 = static_cast<int64_t>(std::clamp(x0f, -2.f, static_cast<float>(in.width)));
  const int64_t y0 = static_cast<int64_t>(std::clamp(y0f, -2.f, static_cast<float>(in.height)));
  const int64_t base = static_cast<int64_t>(in.batch[p]) * in.height * in.width;
  const float wx[2] = {1.f - fx, fx}, wy[2] = {1.f - fy, fy};
  for (int k = 0; k < 4; ++k) {
    const int64_t xi = x0 + (k & 1), yi = y0 + (k >> 1);
    const bool inside = xi >= 0 && xi < in.width && yi >= 0 && yi < in.height;
    result.offset[k] = inside ? (base + yi * in.width + xi) * in.channels : 0;
    result.weight[k] = inside ? wy[k >> 1] * wx[k & 1] : 0.f;
  }
  return result;
}

// params: features, points, batch index, output (P, C).
bool forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4) return fail("expected features, points, batch index and the output");
  Inputs in;
  if (!read_inputs(params, ndims, shapes, dtypes, &in)) return false;
  float *output = static_cast<float *>(params[3]);
  const int64_t channels = in.channels;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < in.num_points; ++p) {
    const Corners c = corners(in, p);
    float *out = output + p * channels;
    for (int64_t ch = 0; ch < channels; ++ch) out[ch] = sample_channel(in, c, ch);
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
void scatter_samples(const Inputs &in, const float *grad_out, float *grad) {
  const int64_t channels = in.channels;
  std::fill_n(grad, in.num_maps * in.height * in.width * channels, 0.f);
#pragma omp parallel
  {
    const auto [first, last] = this_threads_channels(channels);
    for (int64_t p = 0; p < in.num_points; ++p) {
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

// params: output gradient (P, C), features (for the shape), points, batch index, feature gradient (N, H, W, C).
bool backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 5) return fail("expected the output gradient, features, points, batch index and the gradient");
  Inputs in;
  if (!read_inputs(params + 1, ndims + 1, shapes + 1, dtypes + 1, &in)) return false;
  if (ndims[0] != 2 || shapes[0][0] != in.num_points || shapes[0][1] != in.channels || !is_dtype(dtypes[0], "float32"))
    return fail("output gradient must be float32 (P, C)");
  scatter_samples(in, static_cast<const float *>(params[0]), static_cast<float *>(params[4]));
  return true;
}

bool check_base_and_bias(const Inputs &in, int base, int bias, const int *ndims, int64_t **shapes,
                         const char **dtypes) {
  if (ndims[base] != 2 || shapes[base][0] != in.num_points || shapes[base][1] != in.channels ||
      !is_dtype(dtypes[base], "float32"))
    return fail("base must be float32 (P, C) with the maps' channels");
  if (ndims[bias] != 1 || shapes[bias][0] != in.channels || !is_dtype(dtypes[bias], "float32"))
    return fail("bias must be float32 (C,)");
  return true;
}

// params: base (P, C), features, points, batch index, bias (C,), output (P, C).
bool add_relu_forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 6) return fail("expected base, features, points, batch index, bias and the output");
  Inputs in;
  if (!read_inputs(params + 1, ndims + 1, shapes + 1, dtypes + 1, &in)) return false;
  if (!check_base_and_bias(in, 0, 4, ndims, shapes, dtypes)) return false;
  const float *base = static_cast<const float *>(params[0]), *bias = static_cast<const float *>(params[4]);
  float *output = static_cast<float *>(params[5]);
  const int64_t channels = in.channels;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < in.num_points; ++p) {
    const Corners c = corners(in, p);
    const float *b = base + p * channels;
    float *out = output + p * channels;
    for (int64_t ch = 0; ch < channels; ++ch) out[ch] = std::max(b[ch] + sample_channel(in, c, ch) + bias[ch], 0.f);
  }
  return true;
}

// params: output gradient (P, C), the forward output (P, C), features, points, batch index, then the gradients of
// base (P, C), features (N, H, W, C) and bias (C,).
bool add_relu_backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 8) return fail("expected the output gradient, the output, features, points, batch index and 3 grads");
  Inputs in;
  if (!read_inputs(params + 2, ndims + 2, shapes + 2, dtypes + 2, &in)) return false;
  if (!check_base_and_bias(in, 0, 7, ndims, shapes, dtypes) || !check_base_and_bias(in, 1, 7, ndims, shapes, dtypes))
    return false;
  const float *grad_out = static_cast<const float *>(params[0]), *output = static_cast<const float *>(params[1]);
  float *grad_base = static_cast<float *>(params[5]), *grad_bias = static_cast<float *>(params[7]);
  const int64_t channels = in.channels, count = in.num_points * channels;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) grad_base[i] = output[i] > 0.f ? grad_out[i] : 0.f;
  std::fill_n(grad_bias, channels, 0.f);
#pragma omp parallel
  {
    const auto [first, last] = this_threads_channels(channels);
    for (int64_t p = 0; p < in.num_points; ++p)
      for (int64_t ch = first; ch < last; ++ch) grad_bias[ch] += grad_base[p * channels + ch];
  }
  scatter_samples(in, grad_base, static_cast<float *>(params[6]));
  return true;
}

}  // namespace

extern "C" int BilinearSampleForward(int nparam, void **params, int *ndims, int64_t **shapes,
                                     const char **dtypes, void *, void *) {
  return aot::run(kKernel, forward, nparam, params, ndims, shapes, dtypes);
}

extern "C" int BilinearSampleBackward(int nparam, void **params, int *ndims, int64_t **shapes,
                                      const char **dtypes, void *, void *) {
  return aot::run(kKernel, backward, nparam, params, ndims, shapes, dtypes);
}

extern "C" int BilinearSampleAddReluForward(int nparam, void **params, int *ndims, int64_t **shapes,
                                            const char **dtypes, void *, void *) {
  return aot::run(kKernel, add_relu_forward, nparam, params, ndims, shapes, dtypes);
}

extern "C" int BilinearSampleAddReluBackward(int nparam, void **params, int *ndims, int64_t **shapes,
                                             const char **dtypes, void *, void *) {
  return aot::run(kKernel, add_relu_backward, nparam, params, ndims, shapes, dtypes);
}
