// Greedy non-maximum suppression as a MindSpore AOT CPU kernel (ops.Custom(func_type="aot")), for rows of boxes
// already sorted by descending score:
//   NmsForward: boxes (B, N, 4) float32 XYXY, valid (B, N) bool, groups (B, N) int32, iou_threshold (1,) float32,
//               then the output keep (B, N) bool.
// A box is kept when it is valid and no kept earlier box of its group overlaps it by IoU > iou_threshold
// (torchvision's nms, per group as batched_nms). The IoU is torchvision's float expression, so a pair at the
// threshold is decided as detectron2 decides it. Each row is one task (the images of a batch, in parallel); a row
// costs N x (kept boxes) overlaps at most.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "aot_kernel.h"

namespace {

constexpr char kKernel[] = "NMS";

bool fail(const char *reason) { return aot::fail(kKernel, reason); }

bool check(int nparam, const int *ndims, int64_t **shapes, const char **dtypes) {
  using aot::is_dtype;
  if (nparam != 5) return fail("expected boxes, valid, groups, iou_threshold and the output");
  if (ndims[0] != 3 || shapes[0][2] != 4 || !is_dtype(dtypes[0], "float32")) return fail("boxes must be float32 (B, N, 4)");
  for (int i : {1, 2, 4}) {
    if (ndims[i] != 2 || shapes[i][0] != shapes[0][0] || shapes[i][1] != shapes[0][1])
      return fail("valid, groups and keep must be (B, N) for boxes (B, N, 4)");
  }
  if (!is_dtype(dtypes[1], "bool") || !is_dtype(dtypes[4], "bool")) return fail("valid and keep must be bool");
  if (!is_dtype(dtypes[2], "int32")) return fail("groups must be int32");
  if (ndims[3] != 1 || shapes[3][0] != 1 || !is_dtype(dtypes[3], "float32"))
    return fail("iou_threshold must be float32 (1,)");
  return true;
}

// One row: keep[i] for its n boxes.
void suppress_row(const float *boxes, const bool *valid, const int32_t *groups, float threshold, int64_t n,
                  bool *keep) {
  std::vector<float> areas(n);
  for (int64_t i = 0; i < n; ++i) {
    const float *b = boxes + 4 * i;
    areas[i] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  std::vector<char> removed(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    keep[i] = valid[i] && !removed[i];
    if (!keep[i]) continue;
    const float *a = boxes + 4 * i;
    for (int64_t j = i + 1; j < n; ++j) {
      if (removed[j] || !valid[j] || groups[j] != groups[i]) continue;
      const float *b = boxes + 4 * j;
      const float w = std::max(0.f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
      const float h = std::max(0.f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
      const float inter = w * h;
      if (inter / (areas[i] + areas[j] - inter) > threshold) removed[j] = 1;
    }
  }
}

bool forward(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes, void *) {
  if (!check(nparam, ndims, shapes, dtypes)) return false;
  const int64_t rows = shapes[0][0], n = shapes[0][1];
  const float *boxes = static_cast<const float *>(params[0]);
  const bool *valid = static_cast<const bool *>(params[1]);
  const int32_t *groups = static_cast<const int32_t *>(params[2]);
  const float threshold = *static_cast<const float *>(params[3]);
  bool *keep = static_cast<bool *>(params[4]);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t r = 0; r < rows; ++r)
    suppress_row(boxes + r * n * 4, valid + r * n, groups + r * n, threshold, n, keep + r * n);
  return true;
}

}  // namespace

AOT_ENTRY_POINT(NmsForward, kKernel, forward)
