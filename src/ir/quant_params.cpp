#include "compress/ir/quant_params.h"

#include <cmath>

#include "compress/support/check.h"

namespace compress::ir {

std::string_view granularity_name(QuantGranularity g) {
  switch (g) {
    case QuantGranularity::kPerTensor: return "per_tensor";
    case QuantGranularity::kPerAxis: return "per_axis";
    case QuantGranularity::kPerGroup: return "per_group";
  }
  return "?";
}

Expected<QuantParams> QuantParams::create(Spec spec) {
  constexpr StatusCode kBad = StatusCode::kInvalidArgument;
  COMPRESS_CHECK(is_quantizable_storage(spec.storage), kBad,
                 "quant params: storage dtype {} cannot hold quantized values (use i8, u8, i4, u4 or i32)",
                 dtype_name(spec.storage));
  COMPRESS_CHECK(!spec.scales.empty(), kBad, "quant params: no scales");
  for (size_t i = 0; i < spec.scales.size(); ++i) {
    const float s = spec.scales[i];
    COMPRESS_CHECK(std::isfinite(s) && s > 0.0f, kBad,
                   "quant params: scale[{}] = {} is invalid (must be finite and > 0; a zero-range tensor needs a "
                   "positive fallback scale)",
                   i, s);
  }
  if (spec.zero_points.empty()) spec.zero_points.assign(spec.scales.size(), 0);
  COMPRESS_CHECK(spec.zero_points.size() == spec.scales.size(), kBad,
                 "quant params: {} zero points for {} scales", spec.zero_points.size(), spec.scales.size());
  const DTypeTraits& t = traits(spec.storage);
  const int64_t qmin = spec.qmin.value_or(t.min_value);
  const int64_t qmax = spec.qmax.value_or(t.max_value);
  COMPRESS_CHECK(qmin < qmax, kBad, "quant params: qmin {} must be < qmax {}", qmin, qmax);
  COMPRESS_CHECK(qmin >= t.min_value && qmax <= t.max_value, kBad,
                 "quant params: range [{}, {}] does not fit {} [{}, {}]", qmin, qmax, t.name, t.min_value,
                 t.max_value);
  for (size_t i = 0; i < spec.zero_points.size(); ++i) {
    COMPRESS_CHECK(spec.zero_points[i] >= qmin && spec.zero_points[i] <= qmax, kBad,
                   "quant params: zero_point[{}] = {} outside [{}, {}]", i, spec.zero_points[i], qmin, qmax);
  }
  switch (spec.granularity) {
    case QuantGranularity::kPerTensor:
      COMPRESS_CHECK(spec.scales.size() == 1, kBad, "quant params: per-tensor needs 1 scale, got {}",
                     spec.scales.size());
      spec.axis = 0;
      spec.group_size = 0;
      break;
    case QuantGranularity::kPerAxis:
      COMPRESS_CHECK(spec.axis >= 0 && spec.axis < 8, kBad, "quant params: axis {} out of range",
                     spec.axis);
      spec.group_size = 0;
      break;
    case QuantGranularity::kPerGroup:
      COMPRESS_CHECK(spec.axis >= 0 && spec.axis < 8, kBad, "quant params: axis {} out of range",
                     spec.axis);
      COMPRESS_CHECK(spec.group_size > 0, kBad, "quant params: group_size must be > 0, got {}", spec.group_size);
      break;
    default:
      return invalid_argument("quant params: unknown granularity {}", static_cast<int>(spec.granularity));
  }
  QuantParams p;
  p.storage_ = spec.storage;
  p.granularity_ = spec.granularity;
  p.axis_ = spec.axis;
  p.group_size_ = spec.group_size;
  p.scales_ = std::move(spec.scales);
  p.zero_points_ = std::move(spec.zero_points);
  p.qmin_ = qmin;
  p.qmax_ = qmax;
  return p;
}

Expected<QuantParams> QuantParams::per_tensor(DType storage, float scale, int32_t zero_point) {
  Spec spec;
  spec.storage = storage;
  spec.scales = {scale};
  spec.zero_points = {zero_point};
  return create(std::move(spec));
}

Expected<QuantParams> QuantParams::per_axis(DType storage, int64_t axis, std::vector<float> scales,
                                            std::vector<int32_t> zero_points) {
  Spec spec;
  spec.storage = storage;
  spec.granularity = QuantGranularity::kPerAxis;
  spec.axis = axis;
  spec.scales = std::move(scales);
  spec.zero_points = std::move(zero_points);
  return create(std::move(spec));
}

bool QuantParams::symmetric() const {
  for (int32_t z : zero_points_) {
    if (z != 0) return false;
  }
  return true;
}

Status QuantParams::check_shape(const std::vector<int64_t>& shape) const {
  if (granularity_ == QuantGranularity::kPerTensor) return Status::ok();
  COMPRESS_CHECK(axis_ < static_cast<int64_t>(shape.size()), StatusCode::kInvalidArgument,
                 "quant params: axis {} out of range for shape of rank {}", axis_, shape.size());
  const int64_t dim = shape[static_cast<size_t>(axis_)];
  int64_t expected = dim;
  if (granularity_ == QuantGranularity::kPerGroup) {
    COMPRESS_CHECK(dim % group_size_ == 0, StatusCode::kInvalidArgument,
                   "quant params: axis {} of size {} is not a multiple of group_size {}", axis_, dim, group_size_);
    // One scale per (group along axis) x (every index of the other dims).
    int64_t others = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (static_cast<int64_t>(d) != axis_) others *= shape[d];
    }
    expected = (dim / group_size_) * others;
  }
  COMPRESS_CHECK(static_cast<int64_t>(scales_.size()) == expected, StatusCode::kInvalidArgument,
                 "quant params: {} has {} scales, shape needs {}", granularity_name(granularity_), scales_.size(),
                 expected);
  return Status::ok();
}

// Note [Per-group parameter order]
// Per-group params are laid out as if the quantized axis were split into
// (dim / group_size) groups and moved last: index = outer_index * groups + g,
// where outer_index enumerates the other dims in row-major order. For the
// usual weight [out, in] grouped along axis 1 this is scales[out][group].
int64_t QuantParams::param_index(const std::vector<int64_t>& shape, int64_t flat_index) const {
  if (granularity_ == QuantGranularity::kPerTensor) return 0;
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis_) + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t dim = shape[static_cast<size_t>(axis_)];
  const int64_t axis_index = (flat_index / inner) % dim;
  if (granularity_ == QuantGranularity::kPerAxis) return axis_index;
  const int64_t groups = dim / group_size_;
  const int64_t outer = flat_index / (inner * dim);
  const int64_t outer_index = outer * inner + flat_index % inner;
  return outer_index * groups + axis_index / group_size_;
}

std::string QuantParams::to_string() const {
  std::string s = fmt::format("{} {}", dtype_name(storage_), granularity_name(granularity_));
  if (granularity_ != QuantGranularity::kPerTensor) s += fmt::format(" axis={}", axis_);
  if (granularity_ == QuantGranularity::kPerGroup) s += fmt::format(" group={}", group_size_);
  if (scales_.size() == 1) {
    s += fmt::format(" scale={:g} zp={}", scales_[0], zero_points_[0]);
  } else {
    s += fmt::format(" scales={}", scales_.size());
  }
  const DTypeTraits& t = traits(storage_);
  if (qmin_ != t.min_value || qmax_ != t.max_value) s += fmt::format(" range=[{},{}]", qmin_, qmax_);
  return s;
}

bool QuantParams::operator==(const QuantParams& o) const {
  return storage_ == o.storage_ && granularity_ == o.granularity_ && axis_ == o.axis_ &&
         group_size_ == o.group_size_ && scales_ == o.scales_ && zero_points_ == o.zero_points_ &&
         qmin_ == o.qmin_ && qmax_ == o.qmax_;
}

}  // namespace compress::ir
