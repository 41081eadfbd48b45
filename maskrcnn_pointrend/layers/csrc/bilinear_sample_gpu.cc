// The bilinear sampling kernels' AOT entry points on the GPU: the parameters are checked from their shapes and
// dtypes as on the CPU (bilinear_sample_params.h), then the CUDA kernels of bilinear_sample_gpu.cu run on MindSpore's
// stream. Batch indices stay on the device (the kernels sample zeros for one out of range).
#include <algorithm>
#include <cstdint>

#include "bilinear_sample.h"
#include "bilinear_sample_params.h"
#include "cuda_driver.h"

namespace {

using bilinear_sample::Layout;
using bilinear_sample::kKernel;

constexpr unsigned kSumColumns = 32, kSumRowSlices = 8;
constexpr int64_t kRowsPerThread = 256;

bilinear_sample::SampleShape sample_shape(const Layout &l) {
  return {l.num_maps, l.height, l.width, l.channels, l.num_points};
}

// Launches `function` with one thread per (point, channel).
bool launch_per_element(const char *function, const Layout &layout, void **args, void *stream) {
  return cuda::launch(kKernel, function, cuda::blocks_for(layout.num_points * layout.channels),
                      {cuda::kThreadsPerBlock, 1, 1}, 0, stream, args);
}

// grad (N, H, W, C) = the scatter-add of grad_out (P, C) into the points' corners.
bool scatter(const Layout &layout, void **params, void *grad_out, void *grad, void *stream) {
  const int64_t size = layout.num_maps * layout.height * layout.width * layout.channels;
  if (!cuda::zero(kKernel, grad, size, stream)) return false;
  bilinear_sample::SampleShape shape = sample_shape(layout);
  void *points = params[layout.features + 1], *batch = params[layout.features + 2];
  void *args[] = {&shape, &grad_out, &points, &batch, &grad};
  return launch_per_element("bilinear_sample_scatter", layout, args, stream);
}

bool forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *stream) {
  Layout layout;
  if (!bilinear_sample::forward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  bilinear_sample::SampleShape shape = sample_shape(layout);
  void *args[] = {&shape, &params[0], &params[1], &params[2], &params[3]};
  return launch_per_element("bilinear_sample_forward", layout, args, stream);
}

bool backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *stream) {
  Layout layout;
  if (!bilinear_sample::backward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  return scatter(layout, params, params[0], params[4], stream);
}

bool add_relu_forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes,
                      void *stream) {
  Layout layout;
  if (!bilinear_sample::add_relu_forward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  bilinear_sample::SampleShape shape = sample_shape(layout);
  void *args[] = {&shape, &params[0], &params[1], &params[2], &params[3], &params[4], &params[5]};
  return launch_per_element("bilinear_sample_add_relu_forward", layout, args, stream);
}

// The ReLU's gradient gives the base gradient, whose column sums are the bias gradient and whose scatter-add is the
// feature gradient.
bool add_relu_backward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes,
                       void *stream) {
  Layout layout;
  if (!bilinear_sample::add_relu_backward_layout(nparam, ndims, shapes, dtypes, &layout)) return false;
  void *grad_out = params[0], *output = params[1], *grad_base = params[5], *grad_maps = params[6];
  void *grad_bias = params[7];
  int64_t count = layout.num_points * layout.channels, num_rows = layout.num_points, channels = layout.channels;
  void *relu_args[] = {&count, &grad_out, &output, &grad_base};
  if (!launch_per_element("relu_gradient", layout, relu_args, stream)) return false;
  if (!cuda::zero(kKernel, grad_bias, channels, stream)) return false;
  const cuda::Dim3 grid{static_cast<unsigned>((channels + kSumColumns - 1) / kSumColumns),
                        static_cast<unsigned>(std::clamp<int64_t>(
                            (num_rows + kSumRowSlices * kRowsPerThread - 1) / (kSumRowSlices * kRowsPerThread), 1,
                            65535)),
                        1};
  void *sum_args[] = {&num_rows, &channels, &grad_base, &grad_bias};
  if (!cuda::launch(kKernel, "column_sums", grid, {kSumColumns, kSumRowSlices, 1}, 0, stream, sum_args)) return false;
  return scatter(layout, params, grad_base, grad_maps, stream);
}

}  // namespace

AOT_ENTRY_POINT(BilinearSampleForward, kKernel, forward)
AOT_ENTRY_POINT(BilinearSampleBackward, kKernel, backward)
AOT_ENTRY_POINT(BilinearSampleAddReluForward, kKernel, add_relu_forward)
AOT_ENTRY_POINT(BilinearSampleAddReluBackward, kKernel, add_relu_backward)
