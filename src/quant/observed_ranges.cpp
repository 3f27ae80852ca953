// Observed ranges as graph annotations (Note [Observed ranges in the model]).
#include "compress/quant/observed_ranges.h"

#include <cmath>

namespace compress::quant {
namespace {

Status check_range(const std::string& value, const Range& r) {
  if (!std::isfinite(r.min) || !std::isfinite(r.max) || r.min > r.max) {
    return invalid_argument("observed range of '{}' is not a finite [min, max]: [{}, {}]", value, r.min, r.max);
  }
  return Status::ok();
}

}  // namespace

Status store_observed_ranges(ir::Graph& graph, const std::map<std::string, Range>& ranges) {
  // Checked first, so that a bad entry leaves the stored ranges as they were.
  for (const auto& [value, r] : ranges) COMPRESS_RETURN_IF_ERROR(check_range(value, r));
  for (const auto& [value, r] : ranges) {
    ir::Tensor t = ir::Tensor::from_vector<float>(ir::DType::kF32, {2}, std::vector<float>{r.min, r.max});
    COMPRESS_RETURN_IF_ERROR(
        graph.annotations().set(ir::kObservedRangeKind, ir::AnnotationTarget::graph(value), std::move(t)));
  }
  return Status::ok();
}

Expected<std::map<std::string, Range>> observed_ranges(const ir::Graph& graph) {
  std::map<std::string, Range> out;
  for (const ir::Annotation& a : graph.annotations().list(ir::kObservedRangeKind)) {
    const std::string value = a.target.name();
    const ir::Tensor& t = a.payload;
    if (a.target.kind() != ir::AnnotationTarget::Kind::kGraph || t.dtype() != ir::DType::kF32 || t.numel() != 2) {
      return invalid_argument("observed range of '{}' ({} annotation of {}) must be a graph-level f32 tensor of 2 "
                              "values, got {}{}",
                              value, ir::kObservedRangeKind, a.target.to_string(), ir::dtype_name(t.dtype()),
                              ir::shape_to_string(t.shape()));
    }
    const Range r{t.data<float>()[0], t.data<float>()[1]};
    COMPRESS_RETURN_IF_ERROR(check_range(value, r));
    out[value] = r;
  }
  return out;
}

}  // namespace compress::quant
