// The AOT parameters of the bilinear sampling kernels as MindSpore passes them, checked from their shapes and
// dtypes alone (host arrays; the data may live on the GPU), for the CPU kernels and the GPU entry points alike:
//   BilinearSampleForward:         features (N, H, W, C), points (P, 2), batch index (P,), output (P, C)
//   BilinearSampleBackward:        output gradient (P, C), features (for the shape), points, batch index,
//                                  feature gradient (N, H, W, C)
//   BilinearSampleAddReluForward:  base (P, C), features, points, batch index, bias (C,), output (P, C)
//   BilinearSampleAddReluBackward: output gradient (P, C), the forward output (P, C), features, points, batch index,
//                                  then the gradients of base (P, C), features (N, H, W, C) and bias (C,)
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "aot_kernel.h"

namespace bilinear_sample {

constexpr char kKernel[] = "bilinear_sample";

// Positions of features, points and batch index in the parameters, and the sizes they agree on.
struct Layout {
  int features = 0;  // then points, batch index
  int64_t num_maps = 0, height = 0, width = 0, channels = 0, num_points = 0;
};

inline bool fail(const std::string &reason) { return aot::fail(kKernel, reason); }

inline bool check_samples(int features, const int *ndims, int64_t **shapes, const char **dtypes, Layout *layout) {
  using aot::is_dtype;
  const int points = features + 1, batch = features + 2;
  if (ndims[features] != 4 || !is_dtype(dtypes[features], "float32"))
    return fail("features must be float32 (N, H, W, C)");
  if (ndims[points] != 2 || shapes[points][1] != 2 || !is_dtype(dtypes[points], "float32"))
    return fail("points must be float32 (P, 2)");
  if (ndims[batch] != 1 || shapes[batch][0] != shapes[points][0] || !is_dtype(dtypes[batch], "int32"))
    return fail("batch index must be int32 (P,)");
  layout->features = features;
  layout->num_maps = shapes[features][0];
  layout->height = shapes[features][1];
  layout->width = shapes[features][2];
  layout->channels = shapes[features][3];
  layout->num_points = shapes[points][0];
  return true;
}

// Whether params[i] is float32 (P, C) (rows) or (C,) (a bias) for the layout's points and channels.
inline bool is_rows(const Layout &layout, int i, const int *ndims, int64_t **shapes, const char **dtypes) {
  return ndims[i] == 2 && shapes[i][0] == layout.num_points && shapes[i][1] == layout.channels &&
         aot::is_dtype(dtypes[i], "float32");
}

inline bool is_bias(const Layout &layout, int i, const int *ndims, int64_t **shapes, const char **dtypes) {
  return ndims[i] == 1 && shapes[i][0] == layout.channels && aot::is_dtype(dtypes[i], "float32");
}

// Whether params[i] is a float32 gradient of the features.
inline bool is_feature_grad(const Layout &layout, int i, const int *ndims, int64_t **shapes, const char **dtypes) {
  return ndims[i] == 4 && std::equal(shapes[i], shapes[i] + 4, shapes[layout.features]) &&
         aot::is_dtype(dtypes[i], "float32");
}

inline bool forward_layout(int nparam, const int *ndims, int64_t **shapes, const char **dtypes, Layout *layout) {
  if (nparam != 4) return fail("expected features, points, batch index and the output");
  if (!check_samples(0, ndims, shapes, dtypes, layout)) return false;
  return is_rows(*layout, 3, ndims, shapes, dtypes) || fail("output must be float32 (P, C)");
}

inline bool backward_layout(int nparam, const int *ndims, int64_t **shapes, const char **dtypes, Layout *layout) {
  if (nparam != 5) return fail("expected the output gradient, features, points, batch index and the gradient");
  if (!check_samples(1, ndims, shapes, dtypes, layout)) return false;
  if (!is_rows(*layout, 0, ndims, shapes, dtypes)) return fail("output gradient must be float32 (P, C)");
  return is_feature_grad(*layout, 4, ndims, shapes, dtypes) ||
         fail("feature gradient must be float32 with the shape of the features");
}

inline bool add_relu_forward_layout(int nparam, const int *ndims, int64_t **shapes, const char **dtypes,
                                    Layout *layout) {
  if (nparam != 6) return fail("expected base, features, points, batch index, bias and the output");
  if (!check_samples(1, ndims, shapes, dtypes, layout)) return false;
  if (!is_rows(*layout, 0, ndims, shapes, dtypes)) return fail("base must be float32 (P, C) with the maps' channels");
  if (!is_bias(*layout, 4, ndims, shapes, dtypes)) return fail("bias must be float32 (C,)");
  return is_rows(*layout, 5, ndims, shapes, dtypes) || fail("output must be float32 (P, C)");
}

inline bool add_relu_backward_layout(int nparam, const int *ndims, int64_t **shapes, const char **dtypes,
                                     Layout *layout) {
  if (nparam != 8) return fail("expected the output gradient, the output, features, points, batch index and 3 grads");
  if (!check_samples(2, ndims, shapes, dtypes, layout)) return false;
  for (int rows : {0, 1, 5})
    if (!is_rows(*layout, rows, ndims, shapes, dtypes))
      return fail("output gradient, output and base gradient must be float32 (P, C) with the maps' channels");
  if (!is_feature_grad(*layout, 6, ndims, shapes, dtypes))
    return fail("feature gradient must be float32 with the shape of the features");
  return is_bias(*layout, 7, ndims, shapes, dtypes) || fail("bias gradient must be float32 (C,)");
}

}  // namespace bilinear_sample
