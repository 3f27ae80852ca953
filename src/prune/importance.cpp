// L1 / L2 / BN-gamma / stored (Taylor) importance of structured-pruning units (Note [Structured importance]).
#include "compress/prune/importance.h"

#include <cmath>

#include "compress/support/check.h"

namespace compress::prune {
namespace {

using Role = analysis::ChannelMember::Role;

// Adds |x| (l1) or x^2 (l2) of every slice of `m`'s axis a unit owns; a
// pruned (sparse) weight is scored by its dense values.
Status accumulate(const analysis::ChannelMember& m, bool squares, std::vector<double>* scores) {
  COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor t, m.value->constant().dense_f32("structured importance: " + m.value->name()));
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

// The conv2d/linear node whose weight is `weight`.
const ir::Node* producer_of(const ir::Value* weight) {
  const auto layer = analysis::layer_of_weight(*weight, channel_layer_query());
  return layer ? layer->node : nullptr;
}

// Adds the stored scores of the producer owning `m` (Note [Stored importance]).
Status accumulate_stored(const analysis::ChannelMember& m, std::vector<double>* scores) {
  const ir::Node* node = producer_of(m.value);
  COMPRESS_CHECK(node != nullptr, StatusCode::kInternal, "structured importance: '{}' has no conv2d/linear producer",
                 m.value->name());
  COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor* stored, stored_channel_importance(*m.value->owner(), *node));
  COMPRESS_CHECK(stored != nullptr, StatusCode::kInvalidArgument,
                 "prune.structured criterion taylor: layer '{}' has no stored importance (annotation {}); run "
                 "distill.taylor_importance before prune.structured with criterion: taylor (in the same recipe, "
                 "with training data)",
                 node->name(), ir::kChannelImportanceKind);
  const float* data = stored->data<float>();
  for (size_t u = 0; u < m.indices.size(); ++u) {
    for (int64_t i : m.indices[u]) (*scores)[u] += data[i];
  }
  return Status::ok();
}

}  // namespace

Status store_channel_importance(ir::Graph& graph, const std::string& node, const std::vector<float>& scores) {
  const ir::Node* target = graph.find_node(node);
  COMPRESS_CHECK(target != nullptr, StatusCode::kNotFound,
                 "cannot store the channel importance of node '{}': the graph has no node of that name", node);
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i]) || scores[i] < 0) {
      return invalid_argument("importance of '{}' channel {} is {} (must be finite and >= 0)", node, i, scores[i]);
    }
  }
  ir::Tensor t = ir::Tensor::from_vector<float>(ir::DType::kF32, {static_cast<int64_t>(scores.size())}, scores);
  return graph.annotations().set(ir::kChannelImportanceKind, ir::AnnotationTarget::node(*target), std::move(t));
}

Expected<const ir::Tensor*> stored_channel_importance(const ir::Graph& graph, const ir::Node& node) {
  COMPRESS_CHECK(node.owner() == &graph, StatusCode::kInvalidArgument,
                 "stored importance: node '{}' is not a node of this graph", node.name());
  const ir::Tensor* t = graph.annotations().find(ir::kChannelImportanceKind, ir::AnnotationTarget::node(node));
  if (t == nullptr) return t;
  const int64_t channels = node.num_inputs() > 1 ? node.input(1)->shape()[0] : -1;
  if (t->dtype() != ir::DType::kF32 || t->shape().size() != 1 || t->shape()[0] != channels) {
    return invalid_argument("stored importance of '{}' (annotation {}) must be an f32 tensor [{}] (the output "
                            "channels of '{}'), got {}{}",
                            node.name(), ir::kChannelImportanceKind, channels, node.name(),
                            ir::dtype_name(t->dtype()), ir::shape_to_string(t->shape()));
  }
  return t;
}

const std::vector<std::string>& importance_criterion_names() {
  static const std::vector<std::string> names = {"l1", "l2", "bn_gamma", "taylor"};
  return names;
}

Expected<ImportanceCriterion> parse_importance_criterion(const std::string& name) {
  if (name == "l1") return ImportanceCriterion::kL1;
  if (name == "l2") return ImportanceCriterion::kL2;
  if (name == "bn_gamma") return ImportanceCriterion::kBnGamma;
  if (name == "taylor") return ImportanceCriterion::kTaylor;
  return invalid_argument("unknown structured importance criterion '{}' (expected l1, l2, bn_gamma or taylor)", name);
}

Expected<std::vector<double>> unit_importance(const analysis::ChannelGroup& group, ImportanceCriterion criterion) {
  std::vector<double> scores(static_cast<size_t>(group.num_units), 0.0);
  if (criterion == ImportanceCriterion::kTaylor) {
    for (const analysis::ChannelMember& m : group.members) {
      if (m.role == Role::kProducerWeight && m.axis == 0) COMPRESS_RETURN_IF_ERROR(accumulate_stored(m, &scores));
    }
    return scores;
  }
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

analysis::WeightedLayerQuery channel_layer_query() {
  analysis::WeightedLayerQuery query;
  query.ops = {ir::OpKind::conv2d, ir::OpKind::linear};
  query.f32_weight = false;  // the scores belong to the layer whatever its weight's storage
  query.constant_bias = false;
  return query;
}

}  // namespace compress::prune
