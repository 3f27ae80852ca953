// Quantization parameters: real = scale * (q - zero_point), built through a checked factory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compress/ir/dtype.h"
#include "compress/support/status.h"

namespace compress::ir {

enum class QuantGranularity : uint8_t { kPerTensor = 0, kPerAxis = 1, kPerGroup = 2 };
std::string_view granularity_name(QuantGranularity g);

// Note [QuantParams invariants]
// Every QuantParams in a graph went through QuantParams::create(), which
// rejects zero, negative, NaN and Inf scales, zero points outside
// [qmin, qmax], qmin > qmax, a range outside the storage dtype, and scale
// counts that do not match the granularity. Code that consumes QuantParams
// can therefore divide by a scale without checking it.
class QuantParams {
 public:
  struct Spec {
    DType storage = DType::kI8;
    QuantGranularity granularity = QuantGranularity::kPerTensor;
    int64_t axis = 0;        // per-axis / per-group: the quantized axis
    int64_t group_size = 0;  // per-group: elements per group along `axis`
    std::vector<float> scales;
    std::vector<int32_t> zero_points;  // empty means all zero
    std::optional<int64_t> qmin;       // default: the storage dtype's range
    std::optional<int64_t> qmax;
  };

  static Expected<QuantParams> create(Spec spec);
  static Expected<QuantParams> per_tensor(DType storage, float scale, int32_t zero_point);
  static Expected<QuantParams> per_axis(DType storage, int64_t axis, std::vector<float> scales,
                                        std::vector<int32_t> zero_points);

  DType storage() const { return storage_; }
  QuantGranularity granularity() const { return granularity_; }
  int64_t axis() const { return axis_; }
  int64_t group_size() const { return group_size_; }
  const std::vector<float>& scales() const { return scales_; }
  const std::vector<int32_t>& zero_points() const { return zero_points_; }
  int64_t qmin() const { return qmin_; }
  int64_t qmax() const { return qmax_; }
  bool symmetric() const;

  // Checks that the params fit a tensor of this shape (axis in range, one
  // scale per channel or group).
  Status check_shape(const std::vector<int64_t>& shape) const;
  // Index into scales()/zero_points() of a flat element index of a tensor
  // with the given shape (contiguous, row-major).
  int64_t param_index(const std::vector<int64_t>& shape, int64_t flat_index) const;

  std::string to_string() const;
  bool operator==(const QuantParams& other) const;
  bool operator!=(const QuantParams& other) const { return !(*this == other); }

 private:
  QuantParams() = default;
  DType storage_ = DType::kI8;
  QuantGranularity granularity_ = QuantGranularity::kPerTensor;
  int64_t axis_ = 0;
  int64_t group_size_ = 0;
  std::vector<float> scales_;
  std::vector<int32_t> zero_points_;
  int64_t qmin_ = -128;
  int64_t qmax_ = 127;
};

}  // namespace compress::ir
