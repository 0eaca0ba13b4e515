/* kernels_kquants.h — kernels for K-quants Q2_K..Q6_K and IQ4_XS (Q8_K activations).
 * Included by kernels.h after the F32/F16/Q8_0/Q4_0 families and their helpers. */
#ifndef M64_KERNELS_KQUANTS_H
#define M64_KERNELS_KQUANTS_H

#endif
