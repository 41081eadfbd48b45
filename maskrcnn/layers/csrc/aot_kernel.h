// What every MindSpore AOT CPU kernel here shares: dtype checks, error reporting, and the entry-point guard.
// MindSpore calls an entry point as f(nparam, params, ndims, shapes, dtypes, stream, extra) and raises when it
// returns nonzero; the reason is printed to stderr first.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace aot {

// A kernel body: false (after printing why) when the inputs are not what it takes.
using KernelBody = bool (*)(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes);

inline bool is_dtype(const char *dtype, const char *expected) { return std::strcmp(dtype, expected) == 0; }

inline bool fail(const char *kernel, const std::string &reason) {
  std::fprintf(stderr, "%s kernel: %s\n", kernel, reason.c_str());
  return false;
}

// Runs `body` as an entry point: 0 on success, 1 on failure or on an exception (none may cross into MindSpore).
inline int run(const char *kernel, KernelBody body, int nparam, void **params, int *ndims, int64_t **shapes,
               const char **dtypes) {
  try {
    return body(nparam, params, ndims, shapes, dtypes) ? 0 : 1;
  } catch (const std::exception &error) {
    fail(kernel, error.what());
    return 1;
  }
}

}  // namespace aot
