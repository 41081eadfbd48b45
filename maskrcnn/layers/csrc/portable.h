// What lets one inline function compile both for the host (g++, the CPU kernels) and for the device (NVRTC, the
// CUDA kernels), so that both devices evaluate the same per-element formulas: the function qualifiers, the fixed
// width integers (NVRTC has no standard headers) and the few math functions the kernels use.
#pragma once

#if defined(__CUDACC__)
#define PORTABLE __host__ __device__ inline
#else
#define PORTABLE inline
#endif

#if defined(__CUDACC_RTC__)
typedef int int32_t;
typedef long long int64_t;
#else
#include <math.h>

#include <cmath>
#include <cstdint>
#endif

namespace portable {

// floor, ceil and fabs are exact, so the C functions give the same floats on both devices.
PORTABLE float floor(float v) { return floorf(v); }

PORTABLE float ceil(float v) { return ceilf(v); }

PORTABLE float abs(float v) { return fabsf(v); }

PORTABLE bool is_finite(float v) {
#if defined(__CUDACC__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

// std::max(a, b) and std::clamp(v, lo, hi), which device code cannot call.
template <typename T>
PORTABLE T max(T a, T b) { return a < b ? b : a; }

template <typename T>
PORTABLE T clamp(T v, T lo, T hi) { return v < lo ? lo : hi < v ? hi : v; }

}  // namespace portable
