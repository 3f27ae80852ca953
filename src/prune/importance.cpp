// L1 / L2 / BN-gamma importance of structured-pruning units (Note [Structured importance]).
#include "compress/prune/importance.h"

#include <cmath>

#include "compress/support/check.h"

namespace compress::prune {
namespace {

using Role = analysis::ChannelMember::Role;

Status check_dense_f32(const analysis::ChannelMember& m) {
  const ir::Tensor& t = m.value->constant();
  COMPRESS_CHECK(t.dtype() == ir::DType::kF32 && !t.is_sparse() && !t.is_quantized(), StatusCode::kUnsupported,
                 "structured importance: '{}' is not a dense f32 tensor", m.value->name());
  return Status::ok();
}

// Adds |x| (l1) or x^2 (l2) of every slice of `m`'s axis a unit owns.
Status accumulate(const analysis::ChannelMember& m, bool squares, std::vector<double>* scores) {
  COMPRESS_RETURN_IF_ERROR(check_dense_f32(m));
  const ir::Tensor& t = m.value->constant();
  const ir::Shape& s = t.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < m.axis; ++d) outer *= s[d];
  for (size_t d = m.axis + 1; d < s.size(); ++d) inner *= s[d];
  const int64_t n = s[m.axis];
  const float* data = t.data<float>();
  for (size_t u = 0; u < m.indices.size(); ++u) {
    double sum = 0;
    for (int64_t i : m.indices[u]) {
      for (int64_t o = 0; o < outer; ++o) {
        const float* row = data + (o * n + i) * inner;
        for (int64_t k = 0; k < inner; ++k) sum += squares ? double(row[k]) * row[k] : std::fabs(row[k]);
      }
    }
    (*scores)[u] += sum;
  }
  return Status::ok();
}

}  // namespace

const std::vector<std::string>& importance_criterion_names() {
  static const std::vector<std::string> names = {"l1", "l2", "bn_gamma"};
  return names;
}

Expected<ImportanceCriterion> parse_importance_criterion(const std::string& name) {
  if (name == "l1") return ImportanceCriterion::kL1;
  if (name == "l2") return ImportanceCriterion::kL2;
  if (name == "bn_gamma") return ImportanceCriterion::kBnGamma;
  return invalid_argument("unknown structured importance criterion '{}' (expected l1, l2 or bn_gamma)", name);
}

Expected<std::vector<double>> unit_importance(const analysis::ChannelGroup& group, ImportanceCriterion criterion) {
  std::vector<double> scores(static_cast<size_t>(group.num_units), 0.0);
  if (criterion == ImportanceCriterion::kBnGamma) {
    bool any = false;
    for (const analysis::ChannelMember& m : group.members) {
      if (m.role != Role::kBatchNormWeight) continue;
      any = true;
      COMPRESS_RETURN_IF_ERROR(accumulate(m, false, &scores));
    }
    if (any) return scores;
    criterion = ImportanceCriterion::kL1;  // no batch norm in the group
  }
  const bool squares = criterion == ImportanceCriterion::kL2;
  for (const analysis::ChannelMember& m : group.members) {
    if (m.role == Role::kProducerWeight) COMPRESS_RETURN_IF_ERROR(accumulate(m, squares, &scores));
  }
  if (squares) {
    for (double& s : scores) s = std::sqrt(s);
  }
  return scores;
}

}  // namespace compress::prune
