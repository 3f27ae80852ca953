// The int8 scheme: u8 asymmetric per-tensor activations, s8 symmetric per-channel (or per-tensor) weights.
#pragma once

#include <string>

#include "compress/ir/quant_params.h"
#include "compress/ir/tensor.h"
#include "compress/quant/observer.h"

namespace compress::quant {

// Note [Scale fallbacks]
// A range of width zero (a constant or all-zero activation, a pruned weight
// channel) has no natural scale. It gets kFallbackScale, which represents
// the constant exactly when it is 0 and otherwise to within half a step, and
// a warning. Scales below kMinScale (ranges near the f32 denormals, whose
// reciprocal would overflow) are raised to it with a warning. So a scale is
// always positive, finite and has a finite reciprocal.
inline constexpr float kFallbackScale = 1.0f;
inline constexpr float kMinScale = 1e-10f;

// u8 per tensor covering `range` widened to include 0 (so zero, ReLU's
// floor and conv padding are exact): scale = (max - min) / 255,
// zero_point = clamp(nearbyint(-min / scale), 0, 255). `what` names the
// tensor in warnings.
Expected<ir::QuantParams> activation_params(Range range, const std::string& what);

// How many scales a weight gets: one per output channel (axis 0, the
// default) or one for the whole tensor (quant.ptq's weight_granularity).
enum class WeightGranularity { kPerChannel, kPerTensor };

// The option spelling ("per_channel" / "per_tensor").
Expected<WeightGranularity> parse_weight_granularity(const std::string& name);

// s8 symmetric in [-127, 127]. Per output channel (axis 0):
// scale[c] = max |w[c, ...]| / 127; per tensor: one scale max |w| / 127.
// -128 is left out so that negating a weight never saturates and the scheme
// is the same as PyTorch's and oneDNN's symmetric weights. At `bits` < 8
// (QAT) the range narrows to [-Qp, Qp], Qp = 2^(bits-1) - 1, scale max |w| / Qp,
// stored as packed i4 at bits <= 4.
Expected<ir::QuantParams> weight_params(const ir::Tensor& weight, const std::string& what,
                                        WeightGranularity granularity = WeightGranularity::kPerChannel,
                                        int64_t bits = 8);

// The i8 tensor holding nearbyint(w * (1/scale[c])) clamped (the contract's
// quantize), carrying `params`.
Expected<ir::Tensor> quantize_tensor(const ir::Tensor& weight, const ir::QuantParams& params);

}  // namespace compress::quant
