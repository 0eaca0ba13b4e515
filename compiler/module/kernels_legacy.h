/* kernels_legacy.h — kernels for Q4_1, Q5_0, Q5_1 (Q8_0/Q8_1 activations), BF16, IQ4_NL.
 * Included by kernels.h after the F32/F16/Q8_0/Q4_0 families and their helpers. */
#ifndef M64_KERNELS_LEGACY_H
#define M64_KERNELS_LEGACY_H

#endif
