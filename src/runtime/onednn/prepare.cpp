// Graph preparation for the onednn backend: attribute defaults, batch-norm folding, fusion groups.
#include "prepare.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"
#include "dnnl_util.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Node;
using ir::Tensor;
using ir::Value;

// The single node reading `v` (and reading it once), or null.
Node* single_user(const ir::Graph& g, const Value* v) {
  if (v->uses().size() != 1 || g.is_output(v)) return nullptr;
  return v->uses()[0].user;
}

bool is_dense_f32_constant(const Value* v) {
  return v != nullptr && v->is_constant() && v->constant().dtype() == DType::kF32;
}

Expected<Tensor> dense_constant(const Value* v) { return v->constant().to_dense(); }

// Note [Batch-norm folding]
// conv(x, w, b) followed by an inference batch norm is conv(x, w * s, (b - mean) * s + beta)
// with s = gamma / sqrt(var + eps) per output channel, computed in double and
// rounded once. Only done when the conv output feeds nothing but the batch
// norm and all parameters are constants.
Expected<bool> fold_batch_norm(ir::Graph& g, Node* bn) {
  Value* conv_out = bn->input(0);
  Node* conv = conv_out->producer();
  if (conv == nullptr || !conv->is(ir::OpKind::conv2d) || single_user(g, conv_out) != bn) return false;
  if (conv_out->dtype() != DType::kF32 || !is_dense_f32_constant(conv->input(1))) return false;
  if (conv->num_inputs() > 2 && !is_dense_f32_constant(conv->input(2))) return false;
  for (size_t i = 1; i < 5; ++i) {
    if (!is_dense_f32_constant(bn->input(i))) return false;
  }
  COMPRESS_ASSIGN_OR_RETURN(Tensor w, dense_constant(conv->input(1)));
  const int64_t out_channels = w.dim(0);
  std::vector<const float*> p(4);
  for (size_t i = 0; i < 4; ++i) {
    const Tensor& t = bn->input(i + 1)->constant();
    if (t.numel() != out_channels || t.is_sparse()) return false;
    p[i] = t.data<float>();
  }
  const float *gamma = p[0], *beta = p[1], *mean = p[2], *var = p[3];
  const double eps = bn->attr_float("eps");
  const float* old_bias = conv->num_inputs() > 2 ? conv->input(2)->constant().data<float>() : nullptr;
  if (old_bias != nullptr && conv->input(2)->constant().numel() != out_channels) return false;

  COMPRESS_ASSIGN_OR_RETURN(Tensor new_w, Tensor::zeros(DType::kF32, w.shape()));
  COMPRESS_ASSIGN_OR_RETURN(Tensor new_b, Tensor::zeros(DType::kF32, {out_channels}));
  const int64_t per_channel = out_channels == 0 ? 0 : w.numel() / out_channels;
  for (int64_t o = 0; o < out_channels; ++o) {
    const double s = static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + eps);
    const float* src = w.data<float>() + o * per_channel;
    float* dst = new_w.data<float>() + o * per_channel;
    for (int64_t k = 0; k < per_channel; ++k) dst[k] = static_cast<float>(static_cast<double>(src[k]) * s);
    const double b = old_bias != nullptr ? old_bias[o] : 0.0;
    new_b.data<float>()[o] = static_cast<float>((b - mean[o]) * s + beta[o]);
  }
  if (conv->input(1)->constant().is_sparse()) {
    // Scaling keeps the zeros: the folded weight stays sparse (Note [Sparse weight steps]).
    COMPRESS_ASSIGN_OR_RETURN(new_w, ir::to_csr_layout(new_w));
  }
  COMPRESS_ASSIGN_OR_RETURN(Value * wv, g.add_constant(g.unique_name(conv->name() + ".weight_bn_folded"), new_w));
  COMPRESS_ASSIGN_OR_RETURN(Value * bv, g.add_constant(g.unique_name(conv->name() + ".bias_bn_folded"), new_b));
  conv->replace_input(1, wv);
  if (conv->num_inputs() > 2) {
    conv->replace_input(2, bv);
  } else {
    conv->add_input(bv);
  }
  g.replace_all_uses_with(bn->output(0), conv_out);
  COMPRESS_RETURN_IF_ERROR(g.remove_node(bn));
  release_mapped_pages(w);  // Note [Releasing copied weights]: the plan uses the folded copy
  return true;
}

bool is_f32(const Value* v) { return v->dtype() == DType::kF32; }

// What may follow a main node as post-ops.
struct PostPolicy {
  bool eltwise = false;
  bool sum = false;
  bool relu_only = false;  // batch norm: oneDNN's fuse_norm_relu flag
};

bool is_quantized_layer(const Node& n) {
  return n.schema() != nullptr && n.schema()->weighted.quantized;
}

// A quantize to u8/i8 with one scale and zero point.
bool requantizable(const Node& q) {
  if (!q.is(ir::OpKind::quantize) || q.num_outputs() != 1) return false;
  const auto& params = q.output(0)->type().quant;
  return params != nullptr && params->granularity() == ir::QuantGranularity::kPerTensor &&
         (q.output(0)->dtype() == DType::kU8 || q.output(0)->dtype() == DType::kI8);
}

PostPolicy post_policy(const Node& n) {
  if (!is_f32(n.output(0))) return {};
  // An int8 layer with an f32 output takes the same posts as an f32 one: its
  // output scale and bias come first, then eltwise ops and the sum, each
  // rounded as the reference rounds the separate ops.
  const ir::OpSchema* schema = n.schema();
  if (schema == nullptr) return {};
  if (schema->weighted.is_layer()) return {true, true, false};
  if (schema->channel_flow == ir::ChannelFlow::kBroadcast) return {true, false, false};  // add, sub, mul, div
  if (n.is(ir::OpKind::batch_norm)) return {false, false, true};
  return {};
}

Group make_group(const ir::Graph& g, Node* main, const std::unordered_set<const Node*>& taken, bool fuse) {
  Group group;
  group.main = main;
  if (!fuse) return group;
  if (main->is(ir::OpKind::qconv2d) && !is_f32(main->output(0))) {
    // Note [qadd as a sum post-op] (emit_quantized.cpp): the qadd reading
    // the conv's int8 output as its first operand.
    Node* u = single_user(g, main->output(0));
    if (u != nullptr && !taken.count(u) && u->is(ir::OpKind::qadd) && u->num_inputs() == 2 &&
        u->input(0) == main->output(0) && u->input(1) != u->input(0) && !u->input(1)->is_constant() &&
        u->input(1)->dtype() == u->output(0)->dtype() && u->input(1)->shape() == u->output(0)->shape()) {
      group.residual = u->input(1);
      group.posts.push_back(u);
    }
    return group;
  }
  const PostPolicy policy = post_policy(*main);
  bool have_sum = false;
  Value* cur = main->output(0);
  while (main->num_outputs() == 1) {
    Node* u = single_user(g, cur);
    if (u == nullptr || taken.count(u) || u->num_outputs() != 1 || !is_f32(u->output(0))) break;
    if (policy.relu_only) {
      if (!u->is(ir::OpKind::relu) || !group.posts.empty()) break;
      group.posts.push_back(u);
    } else if (policy.eltwise && is_eltwise_op(u->kind())) {
      group.posts.push_back(u);
    } else if (policy.sum && !have_sum && u->is(ir::OpKind::add) && u->num_inputs() == 2) {
      Value* other = u->input(0) == cur ? u->input(1) : u->input(0);
      if (other == cur || other->is_constant() || !is_f32(other) || other->shape() != cur->shape()) break;
      group.residual = other;
      have_sum = true;
      group.posts.push_back(u);
    } else {
      break;
    }
    cur = u->output(0);
  }
  // Note [Requantizing after f32 post-ops] (emit_quantized.cpp): the
  // quantize that reads an int8 layer's f32 result (after its eltwise posts)
  // becomes the layer's own u8/i8 output. Not after a sum (oneDNN wants the
  // sum's operand in the destination's data type), nor after posts that
  // oneDNN implements with eltwise_linear or clip (one of each per chain).
  Node* q = main->num_outputs() == 1 && is_f32(main->output(0)) && !have_sum ? single_user(g, cur) : nullptr;
  if (q != nullptr && !taken.count(q) && is_quantized_layer(*main) && requantizable(*q)) {
    bool safe = true;
    for (const Node* p : group.posts) safe = safe && requantizes_after(p->kind());
    if (safe) {
      group.posts.push_back(q);
      group.requantize = q;
    }
  }
  return group;
}

}  // namespace

std::vector<const ir::Node*> Group::nodes() const {
  std::vector<const ir::Node*> all{main};
  all.insert(all.end(), posts.begin(), posts.end());
  return all;
}

std::vector<std::string> Group::node_names() const {
  std::vector<std::string> out;
  for (const ir::Node* n : nodes()) out.push_back(n->name());
  return out;
}

Expected<PreparedGraph> prepare_graph(const ir::Graph& source, bool fuse) {
  PreparedGraph prepared;
  prepared.graph = source.clone();
  ir::Graph& g = prepared.graph;
  for (Node* node : g.nodes()) {
    // Nodes read back from files may lack defaulted attributes.
    if (node->schema() == nullptr) continue;
    ir::AttributeMap attrs = node->attrs();
    COMPRESS_RETURN_IF_ERROR(ir::normalize_attributes(*node->schema(), &attrs)
                                 .with_context(fmt::format("node '{}' ({})", node->name(), node->op())));
    for (auto& [name, value] : attrs) node->set_attr(name, value);
  }
  if (fuse) {
    for (Node* node : g.nodes()) {
      if (!node->is(ir::OpKind::batch_norm) || node->num_inputs() != 5) continue;
      COMPRESS_ASSIGN_OR_RETURN(bool folded, fold_batch_norm(g, node));
      if (folded) ++prepared.folded_batch_norms;
    }
    g.remove_unused_constants();
  }

  const std::vector<Node*> nodes = g.nodes();
  std::unordered_map<const Node*, size_t> position;
  for (size_t i = 0; i < nodes.size(); ++i) position[nodes[i]] = i;
  std::unordered_set<const Node*> taken;
  std::vector<std::pair<size_t, Group>> anchored;
  for (Node* node : nodes) {
    if (taken.count(node)) continue;
    Group group = make_group(g, node, taken, fuse);
    for (const Node* n : group.nodes()) taken.insert(n);
    const Node* last = group.posts.empty() ? group.main : group.posts.back();
    anchored.emplace_back(position[last], std::move(group));
  }
  std::stable_sort(anchored.begin(), anchored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [pos, group] : anchored) prepared.groups.push_back(std::move(group));
  return prepared;
}

}  // namespace compress::runtime::onednn
