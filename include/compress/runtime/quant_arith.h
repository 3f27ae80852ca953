// The quantized arithmetic contract (docs/ops.md): every backend must compute these bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

namespace compress::runtime {

// Note [Quantized arithmetic contract]
// All of it is IEEE f32 arithmetic, no FMA contraction, rounding to nearest
// even (std::nearbyint under the default rounding mode). Code that includes
// this header compiles with -ffp-contract=off (CUDA: __fmul_rn/__fadd_rn, or
// --fmad=false), or a fused multiply-add changes the last bit.
//   inv   = 1.0f / scale                        (f32)
//   q     = clamp(nearbyint(x * inv) + zp, qmin, qmax)
//   x'    = (float)(q - zp) * scale             (q - zp exact in int64)
// Multiplying by the f32 reciprocal (instead of dividing) is what PyTorch's
// CPU kernels do (quantize_per_tensor/per_channel, fake_quantize_*), so QAT
// simulated in PyTorch and our int8 backends agree bit for bit, ties included.
// +-Inf saturate to qmax/qmin; NaN has no quantized value and maps to qmin
// (what PyTorch's CPU path produces). fake_quant is the one exception: it
// keeps NaN as NaN.
//
// Quantized conv/linear/matmul (per output channel c):
//   acc   = sum (xq - zx) * (wq - zw[c])         exact, must fit int32
//   acc  += bias[c]                              if the bias is i32 (same check)
//   m     = sx * sw[c]                           (f32 product)
//   real  = (float)acc * m                       (f32; acc rounds to f32 first)
//   real  = real + bias[c]                       if the bias is f32
//   out   = real, or clamp(nearbyint(real * (1.0f / out_scale)) + out_zp, qmin, qmax)

inline float quant_inv_scale(float scale) { return 1.0f / scale; }

inline int64_t quantize_value(float x, float inv_scale, int64_t zero_point, int64_t qmin, int64_t qmax) {
  const float scaled = x * inv_scale;
  if (std::isnan(scaled)) return qmin;
  // Clamp in double: exact for every f32 integer and zero point, and no
  // undefined float->int conversion for huge values.
  const double q = static_cast<double>(std::nearbyint(scaled)) + static_cast<double>(zero_point);
  if (q <= static_cast<double>(qmin)) return qmin;
  if (q >= static_cast<double>(qmax)) return qmax;
  return static_cast<int64_t>(q);
}

inline float dequantize_value(int64_t q, float scale, int64_t zero_point) {
  return static_cast<float>(q - zero_point) * scale;
}

// real value of an int32 accumulator (bias already added when it is i32).
inline float accumulator_to_real(int32_t acc, float x_scale, float w_scale) {
  const float multiplier = x_scale * w_scale;
  return static_cast<float>(acc) * multiplier;
}

}  // namespace compress::runtime
