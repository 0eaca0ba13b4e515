// half_ref.h — an independent f16 -> f32 reference for the kernel tests (plain ldexp, no
// bit tricks, so it cannot share a bug with the kernels' conversion), and LE readers.
#ifndef M64_TEST_HALF_REF_H
#define M64_TEST_HALF_REF_H

#include <cmath>
#include <cstdint>

inline float half_ref(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  float v;
  if (exp == 0) v = std::ldexp((float)man, -24);
  else if (exp == 31) v = man ? NAN : INFINITY;
  else v = std::ldexp((float)(man | 1024), exp - 25);
  return sign ? -v : v;
}

inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

#endif
