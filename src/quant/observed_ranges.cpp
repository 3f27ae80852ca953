// Observed ranges as constants of the graph (Note [Observed ranges in the model]).
#include "compress/quant/observed_ranges.h"

#include <cmath>
#include <cstring>

namespace compress::quant {

Status store_observed_ranges(ir::Graph& graph, const std::map<std::string, Range>& ranges) {
  for (const auto& [value, r] : ranges) {
    if (!std::isfinite(r.min) || !std::isfinite(r.max) || r.min > r.max) {
      return invalid_argument("observed range of '{}' is not a finite [min, max]: [{}, {}]", value, r.min, r.max);
    }
    ir::Tensor t = ir::Tensor::from_vector<float>(ir::DType::kF32, {2}, std::vector<float>{r.min, r.max});
    const std::string name = kObservedRangePrefix + value;
    if (ir::Value* old = graph.find_value(name); old != nullptr) {
      if (!old->is_constant() || old->has_uses()) {
        return invalid_argument("'{}' exists and is not an observed-range constant", name);
      }
      old->set_constant(std::move(t));
    } else {
      COMPRESS_RETURN_IF_ERROR(graph.add_constant(name, std::move(t)).status());
    }
  }
  return Status::ok();
}

Expected<std::map<std::string, Range>> observed_ranges(const ir::Graph& graph) {
  std::map<std::string, Range> out;
  const size_t prefix = std::strlen(kObservedRangePrefix);
  for (const ir::Value* c : graph.constants()) {
    if (c->name().compare(0, prefix, kObservedRangePrefix) != 0) continue;
    const ir::Tensor& t = c->constant();
    if (t.dtype() != ir::DType::kF32 || t.numel() != 2 || t.is_sparse()) {
      return invalid_argument("observed range '{}' must be an f32 tensor of 2 values", c->name());
    }
    const Range r{t.data<float>()[0], t.data<float>()[1]};
    if (!std::isfinite(r.min) || !std::isfinite(r.max) || r.min > r.max) {
      return invalid_argument("observed range '{}' is not a finite [min, max]: [{}, {}]", c->name(), r.min, r.max);
    }
    out[c->name().substr(prefix)] = r;
  }
  return out;
}

}  // namespace compress::quant
