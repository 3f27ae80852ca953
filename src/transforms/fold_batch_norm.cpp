// transforms.fold_batch_norm: batch norm folded into the preceding conv2d/linear.
#include "compress/transforms/fold_batch_norm.h"

#include <cmath>
#include <vector>

#include "compress/analysis/weighted_layers.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/logging.h"

namespace compress::transforms {
namespace {

bool is_f32_constant(const ir::Value* v) { return v->is_constant() && v->dtype() == ir::DType::kF32; }

// The conv2d/linear whose only use is `bn`'s input 0, or null when folding
// would change another consumer or the parameters are not plain constants.
ir::Node* foldable_producer(const ir::Node& bn) {
  ir::Value* x = bn.input(0);
  ir::Node* p = x->producer();
  // conv2d/linear with f32 constant weight and bias: the layers whose
  // weights a batch norm's scale folds into (matmul has no bias to take the
  // shift).
  analysis::WeightedLayerQuery layers;
  layers.ops = {ir::OpKind::conv2d, ir::OpKind::linear};
  if (p == nullptr || !analysis::as_weighted_layer(*p, layers)) return nullptr;
  if (x->uses().size() != 1) return nullptr;
  for (const ir::Value* g : bn.owner()->outputs()) {
    if (g == x) return nullptr;
  }
  for (size_t i = 1; i < 5; ++i) {
    if (!is_f32_constant(bn.input(i))) return nullptr;
  }
  // linear output [N, C] (BatchNorm1d): channel axis 1 is the last one.
  if (p->is(ir::OpKind::linear) && x->shape().size() != 2) return nullptr;
  return p;
}

}  // namespace

Expected<pass::PassResult> FoldBatchNormPass::run(ir::Graph& graph, pass::PassContext& /*context*/) {
  (void)options_;
  pass::PassResult result;
  for (ir::Node* bn : graph.nodes()) {
    if (!bn->is(ir::OpKind::batch_norm)) continue;
    ir::Node* producer = foldable_producer(*bn);
    if (producer == nullptr) {
      log_info("fold_batch_norm: {} kept (its input is not a conv2d/linear with constant parameters used only here)",
               bn->name());
      continue;
    }
    // Values through dense_f32 (a pruned weight loaded from a .cmf stores only
    // its nonzeros); the folded weight is stored the way the old one was, so
    // a pruned layer stays pruned (Note [Writing back a weight]).
    const ir::Tensor& stored_w = producer->input(1)->constant();
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor w, stored_w.dense_f32(producer->input(1)->name()));
    const int64_t channels = w.dim(0);
    const int64_t per_channel = w.numel() / channels;
    std::vector<ir::Tensor> bn_params;
    for (size_t i = 1; i < 5; ++i) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, bn->input(i)->constant().dense_f32(bn->input(i)->name()));
      bn_params.push_back(std::move(t));
    }
    const float* gamma = bn_params[0].data<float>();
    const float* beta = bn_params[1].data<float>();
    const float* mean = bn_params[2].data<float>();
    const float* var = bn_params[3].data<float>();
    const double eps = bn->attr_float("eps");
    ir::Tensor bias;
    if (producer->num_inputs() > 2) {
      COMPRESS_ASSIGN_OR_RETURN(bias, producer->input(2)->constant().dense_f32(producer->input(2)->name()));
    }
    const float* b = bias.defined() ? bias.data<float>() : nullptr;

    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor new_w, ir::Tensor::zeros(ir::DType::kF32, w.shape()));
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor new_b, ir::Tensor::zeros(ir::DType::kF32, {channels}));
    const float* w_values = w.data<float>();
    float* w_out = new_w.data<float>();
    for (int64_t c = 0; c < channels; ++c) {
      const double k = static_cast<double>(gamma[c]) / std::sqrt(static_cast<double>(var[c]) + eps);
      for (int64_t i = 0; i < per_channel; ++i) {
        const int64_t at = c * per_channel + i;
        w_out[at] = static_cast<float>(static_cast<double>(w_values[at]) * k);
      }
      const double bias_c = b != nullptr ? b[c] : 0.0;
      new_b.data<float>()[c] = static_cast<float>((bias_c - mean[c]) * k + beta[c]);
    }
    std::string relayout_note;
    COMPRESS_ASSIGN_OR_RETURN(new_w, ir::store_like(new_w, stored_w, &relayout_note));
    if (!relayout_note.empty()) log_info("fold_batch_norm: {}: {}; stored as csr", producer->name(), relayout_note);
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * w_value,
                              graph.add_constant(graph.unique_name(producer->input(1)->name() + ".folded"), new_w));
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * b_value,
                              graph.add_constant(graph.unique_name(producer->name() + ".bias.folded"), new_b));
    // The folded node takes the producer's name (recipes and reports name
    // layers by it); the old node is renamed away first.
    const std::string layer = producer->name();
    producer->set_name(graph.unique_name(layer + ".unfolded"));
    COMPRESS_ASSIGN_OR_RETURN(ir::Node * folded, graph.add_node(producer->kind(), {producer->input(0), w_value, b_value},
                                                                producer->attrs(), layer, bn));
    graph.replace_all_uses_with(bn->output(), folded->output());
    COMPRESS_RETURN_IF_ERROR(graph.remove_node(bn));
    COMPRESS_RETURN_IF_ERROR(graph.remove_node(producer));
    folded->set_name(layer);  // add_node had to pick another while the old node's output held the name
    result.layers[layer]["folded_batch_norm"] = 1.0;
    result.changed = true;
  }
  if (result.changed) graph.remove_unused_constants();
  result.counters["folded"] = static_cast<double>(result.layers.size());
  return result;
}

Status register_transform_passes(pass::PassRegistry& registry) {
  return registry.add<FoldBatchNormPass>("transforms.fold_batch_norm");
}

}  // namespace compress::transforms
