// quant_bounds.h — error bounds of the reference quantizers (quant.c), shared by the tests.
#ifndef M64_SUPPORT_QUANT_BOUNDS_H
#define M64_SUPPORT_QUANT_BOUNDS_H

#include <cmath>
#include <cstdint>

#include "m64_formats.h"

namespace m64test {

// Elements over which BoundFactor's amax is taken: the block that holds the scale
// everything else is relative to (the super-block for K-quants and IQ4_XS).
inline uint32_t BoundBlock(uint32_t type) {
  switch (type) {
    case M64_GGML_F32: case M64_GGML_F16: case M64_GGML_BF16: return 1;
    case M64_GGML_Q2_K: case M64_GGML_Q3_K: case M64_GGML_Q4_K: case M64_GGML_Q5_K:
    case M64_GGML_Q6_K: case M64_GGML_IQ4_XS: return 256;
    default: return 32;
  }
}

// Largest |dequantized - original| for an element x of a block whose largest magnitude is
// amax. Derivations (A = amax, S = the largest sub-block scale):
//   Q8_0   half a step of A/127.            Q4_0/Q5_0  a full step A/8, A/16 where the
//   side opposite the extreme clamps.       Q4_1/Q5_1  half a step of range/15, /31 <= 2A.
//   IQ4_NL the far side maps past level 113 by up to 14 of 127 steps: 14A/127.
//   Q3_K   S = A/4, super-scale step |d| = S/32: interior |dl|/2, clamp side S + 4|d|.
//   Q6_K   S = A/32, |d| = S/128: S + 31|d| ~ 1.24 S.
//   IQ4_XS S = A/127, |d| = S/32: 14|dl| + 63.5|d| ~ 16.2 S.
//   Q2_K/Q4_K/Q5_K  half a step of range/levels (levels 3, 15, 31) plus the min's and the
//   scale's rounding on their 4- or 6-bit grids: A/3 + ..., A/15 + ..., A/31 + ...
// Each gets a little slack for the f16 scales.
inline double ElemBound(uint32_t type, double amax, double x) {
  double a = amax;
  switch (type) {
    case M64_GGML_F32: return 0;
    case M64_GGML_F16: return std::fabs(x) * std::ldexp(1.0, -11) + std::ldexp(1.0, -24);
    case M64_GGML_BF16: return std::fabs(x) * std::ldexp(1.0, -8) + 1e-38;
    // Q8_0 rounds with the unrounded scale (as ggml does); a scale below 2^-14 is an f16
    // subnormal, whose absolute rounding (up to 2^-25) is then multiplied by |q| <= 127.
    case M64_GGML_Q8_0: return a / 254 + a * 1e-3 + 127 * std::ldexp(1.0, -25);
    case M64_GGML_Q4_0: return a / 8 + a * 1e-3 + 1e-7;
    case M64_GGML_Q4_1: return a / 15 + a * 3e-3 + 1e-7;
    case M64_GGML_Q5_0: return a / 16 + a * 1e-3 + 1e-7;
    case M64_GGML_Q5_1: return a / 31 + a * 3e-3 + 1e-7;
    case M64_GGML_IQ4_NL: return a * 0.115 + 1e-7;
    case M64_GGML_Q2_K: return a * 0.36 + 1e-7;
    case M64_GGML_Q3_K: return a * 0.29 + 1e-7;
    case M64_GGML_Q4_K: return a * 0.075 + 1e-7;
    case M64_GGML_Q5_K: return a * 0.04 + 1e-7;
    case M64_GGML_Q6_K: return a * 0.042 + 1e-7;
    case M64_GGML_IQ4_XS: return a * 0.14 + 1e-7;
    default: return 0;
  }
}

// Bound on the relative RMS error (RMS of the error / RMS of the values) on bell-shaped
// weights like the generator's; about 1.3x what the quantizers reach (llama.cpp's search
// quantizers do 5-10% better on K-quants).
inline double RmsBound(uint32_t type) {
  switch (type) {
    case M64_GGML_F32: return 0;
    case M64_GGML_F16: return 5e-4;
    case M64_GGML_BF16: return 3e-3;
    case M64_GGML_Q8_0: return 0.01;
    case M64_GGML_Q4_0: return 0.12;
    case M64_GGML_Q4_1: return 0.10;
    case M64_GGML_Q5_0: return 0.06;
    case M64_GGML_Q5_1: return 0.05;
    case M64_GGML_IQ4_NL: return 0.11;
    case M64_GGML_Q2_K: return 0.40;
    case M64_GGML_Q3_K: return 0.20;
    case M64_GGML_Q4_K: return 0.10;
    case M64_GGML_Q5_K: return 0.05;
    case M64_GGML_Q6_K: return 0.025;
    case M64_GGML_IQ4_XS: return 0.11;
    default: return 0;
  }
}

}  // namespace m64test
#endif  // M64_SUPPORT_QUANT_BOUNDS_H
