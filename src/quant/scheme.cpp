// Scale and zero-point selection, with the fallbacks of Note [Scale fallbacks].
#include "compress/quant/scheme.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "compress/runtime/quant_arith.h"
#include "compress/support/logging.h"

namespace compress::quant {
namespace {

float checked_scale(float scale, const std::string& what) {
  if (scale == 0.0f) {
    log_warning("quant: {} has a zero-width range; using scale {}", what, kFallbackScale);
    return kFallbackScale;
  }
  if (scale < kMinScale) {
    log_warning("quant: {} has a tiny scale {:g}; raised to {:g}", what, scale, kMinScale);
    return kMinScale;
  }
  return scale;
}

}  // namespace

Expected<ir::QuantParams> activation_params(Range range, const std::string& what) {
  if (!std::isfinite(range.min) || !std::isfinite(range.max) || range.min > range.max) {
    return invalid_argument("quant: {} has an invalid range [{}, {}]", what, range.min, range.max);
  }
  const float lo = std::min(range.min, 0.0f);
  const float hi = std::max(range.max, 0.0f);
  // The width in double: hi - lo may overflow f32 for ranges near FLT_MAX.
  const double width = static_cast<double>(hi) - static_cast<double>(lo);
  const float scale = checked_scale(static_cast<float>(std::min(width / 255.0, 3.0e38)), what);
  const double zp = std::nearbyint(-static_cast<double>(lo) / static_cast<double>(scale));
  const auto zero_point = static_cast<int32_t>(std::clamp(zp, 0.0, 255.0));
  return ir::QuantParams::per_tensor(ir::DType::kU8, scale, zero_point);
}

Expected<WeightGranularity> parse_weight_granularity(const std::string& name) {
  if (name == "per_channel") return WeightGranularity::kPerChannel;
  if (name == "per_tensor") return WeightGranularity::kPerTensor;
  return invalid_argument("weight_granularity must be per_channel or per_tensor, got '{}'", name);
}

Expected<ir::QuantParams> weight_params(const ir::Tensor& stored, const std::string& what,
                                        WeightGranularity granularity, int64_t bits) {
  if (stored.dtype() != ir::DType::kF32 || stored.rank() < 1 || stored.dim(0) < 1) {
    return invalid_argument("quant: weight {} must be f32 with an output-channel axis", what);
  }
  if (bits < 2 || bits > 8) return invalid_argument("quant: weight {}: {} bits (2..8 are supported)", what, bits);
  const auto qp = static_cast<int64_t>((1 << (bits - 1)) - 1);
  const ir::DType storage = bits <= 4 ? ir::DType::kI4 : ir::DType::kI8;
  // A pruned weight's params come from its logical values (zeros included).
  COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor weight, stored.dense_f32(what));
  if (granularity == WeightGranularity::kPerTensor) {
    const float* w = weight.data<float>();
    float amax = 0.0f;
    for (int64_t i = 0; i < weight.numel(); ++i) {
      if (!std::isfinite(w[i])) return invalid_argument("quant: weight {} has a non-finite value at {}", what, i);
      amax = std::max(amax, std::fabs(w[i]));
    }
    ir::QuantParams::Spec spec;
    spec.storage = storage;
    spec.granularity = ir::QuantGranularity::kPerTensor;
    spec.scales = {checked_scale(amax / static_cast<float>(qp), what)};
    spec.zero_points = {0};
    spec.qmin = -qp;
    spec.qmax = qp;
    return ir::QuantParams::create(std::move(spec));
  }
  const int64_t channels = weight.dim(0);
  const int64_t per_channel = weight.numel() / channels;
  const float* w = weight.data<float>();
  std::vector<float> scales(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    float amax = 0.0f;
    for (int64_t i = 0; i < per_channel; ++i) {
      const float v = w[c * per_channel + i];
      if (!std::isfinite(v)) return invalid_argument("quant: weight {} has a non-finite value in channel {}", what, c);
      amax = std::max(amax, std::fabs(v));
    }
    scales[static_cast<size_t>(c)] = checked_scale(amax / static_cast<float>(qp), fmt::format("{} channel {}", what, c));
  }
  ir::QuantParams::Spec spec;
  spec.storage = storage;
  spec.granularity = ir::QuantGranularity::kPerAxis;
  spec.axis = 0;
  spec.scales = std::move(scales);
  spec.zero_points.assign(static_cast<size_t>(channels), 0);
  spec.qmin = -qp;
  spec.qmax = qp;
  return ir::QuantParams::create(std::move(spec));
}

Expected<ir::Tensor> quantize_tensor(const ir::Tensor& stored, const ir::QuantParams& params) {
  COMPRESS_RETURN_IF_ERROR(params.check_shape(stored.shape()));
  // Dense int8 from the logical values: the int8 kernels take dense weights.
  COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor weight, stored.dense_f32("the weight to quantize"));
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor q, ir::Tensor::zeros(params.storage(), weight.shape()));
  const float* w = weight.data<float>();
  for (int64_t i = 0; i < weight.numel(); ++i) {
    const int64_t p = params.param_index(weight.shape(), i);
    const float inv = runtime::quant_inv_scale(params.scales()[p]);
    const int64_t zp = params.zero_points().empty() ? 0 : params.zero_points()[p];
    const int64_t v = runtime::quantize_value(w[i], inv, zp, params.qmin(), params.qmax());
    if (params.storage() == ir::DType::kI8) {
      q.data<int8_t>()[i] = static_cast<int8_t>(v);
    } else if (params.storage() == ir::DType::kI4 || params.storage() == ir::DType::kU4) {
      // 4-bit weights (QAT at <= 4 bits) are stored packed, two per byte.
      ir::set_packed4(static_cast<uint8_t*>(q.raw_data()), i, static_cast<int>(v));
    } else {
      q.data<uint8_t>()[i] = static_cast<uint8_t>(v);
    }
  }
  return q.with_quant(std::make_shared<const ir::QuantParams>(params));
}

}  // namespace compress::quant
