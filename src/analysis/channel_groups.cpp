// Channel-dependency analysis (Note [Channel groups]): union-find over the
// indices of every axis of every value, tied op by op.
#include "compress/analysis/channel_groups.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/check.h"

namespace compress::analysis {
namespace {

using ir::Node;
using ir::Value;

// A graph with more tracked elements than this is refused (the union-find
// uses 32-bit ids); the largest torchvision model at 224x224 has < 10^6.
constexpr int64_t kMaxElements = int64_t{1} << 31;

// The f32 layers whose weight keeps its output channels on axis 0 (conv2d,
// linear): the ones whose channels the tracer lets a pass slice.
const ir::WeightedLayerSpec* sliceable_layer(const Node& n) {
  if (n.schema() == nullptr) return nullptr;
  const ir::WeightedLayerSpec& layer = n.schema()->weighted;
  return layer.is_layer() && !layer.quantized && layer.weight_out_axis == 0 ? &layer : nullptr;
}

class Tracer {
 public:
  // `inner_splits`: reshapes whose 2-way split ties the inner dim instead
  // of the outer one (Note [Reshape splits]).
  Tracer(const ir::Graph& graph, const std::set<const Node*>& inner_splits)
      : graph_(graph), inner_splits_(inner_splits) {}

  Status build_spaces() {
    int64_t total = 0;
    for (Value* v : graph_.values()) {
      first_space_[v] = static_cast<int64_t>(spaces_.size());
      for (size_t a = 0; a < v->shape().size(); ++a) {
        spaces_.push_back({v, static_cast<int64_t>(a), v->shape()[a], total});
        total += std::max<int64_t>(v->shape()[a], 0);
        COMPRESS_CHECK(total < kMaxElements, StatusCode::kUnsupported,
                       "channel analysis: the graph has more than 2^31 channel indices to track");
      }
    }
    parent_.resize(static_cast<size_t>(total));
    std::iota(parent_.begin(), parent_.end(), 0);
    blocked_.assign(static_cast<size_t>(total), -1);
    return Status::ok();
  }

  struct Space {
    Value* value;
    int64_t axis;
    int64_t size;
    int64_t base;
  };

  // --- elements -------------------------------------------------------------
  int64_t space(const Value* v, int64_t axis) const { return first_space_.at(v) + axis; }
  int64_t size(const Value* v, int64_t axis) const { return v->shape()[static_cast<size_t>(axis)]; }
  int32_t element(const Value* v, int64_t axis, int64_t i) const {
    return static_cast<int32_t>(spaces_[static_cast<size_t>(space(v, axis))].base + i);
  }
  int32_t find(int32_t e) {
    while (parent_[e] != e) {
      parent_[e] = parent_[parent_[e]];
      e = parent_[e];
    }
    return e;
  }
  void unite(int32_t a, int32_t b) {
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (a > b) std::swap(a, b);
    parent_[b] = a;  // the smaller id (earlier space) is the root: deterministic
  }
  int rank(const Value* v) const { return static_cast<int>(v->shape().size()); }

  int32_t reason_id(const std::string& reason) {
    auto it = reason_ids_.find(reason);
    if (it != reason_ids_.end()) return it->second;
    reasons_.push_back(reason);
    return reason_ids_[reason] = static_cast<int32_t>(reasons_.size() - 1);
  }
  void block_axis(const Value* v, int64_t axis, const std::string& reason) {
    const int32_t id = reason_id(reason);
    for (int64_t i = 0; i < size(v, axis); ++i) {
      int32_t& b = blocked_[element(v, axis, i)];
      if (b < 0) b = id;
    }
  }
  void block_value(const Value* v, const std::string& reason) {
    for (int a = 0; a < rank(v); ++a) block_axis(v, a, reason);
  }
  // Ties axis `ax` of `a` to axis `bx` of `b` index by index; sizes that
  // differ (which a verified graph only has for broadcasts) tie nothing.
  void tie_axis(const Value* a, int64_t ax, const Value* b, int64_t bx) {
    if (size(a, ax) != size(b, bx)) return;
    for (int64_t i = 0; i < size(a, ax); ++i) unite(element(a, ax, i), element(b, bx, i));
  }
  // Ties every axis of `in` to the same axis of `out` (same rank).
  void tie_all(const Value* in, const Value* out) {
    if (rank(in) != rank(out)) return;
    for (int a = 0; a < rank(in); ++a) tie_axis(in, a, out, a);
  }
  // NumPy broadcasting: `in` aligned to the right of `out`.
  void tie_broadcast(const Value* in, const Value* out) {
    const int off = rank(out) - rank(in);
    if (off < 0) return;
    for (int a = 0; a < rank(in); ++a) tie_axis(in, a, out, a + off);
  }
  static int64_t norm_axis(int64_t axis, int rank) { return axis < 0 ? axis + rank : axis; }

  // --- ops ------------------------------------------------------------------
  void block_node(const Node* n, const std::string& reason) {
    for (const Value* v : n->inputs()) block_value(v, reason);
    for (const Value* v : n->outputs()) block_value(v, reason);
  }

  void trace(const Node* n) {
    using ir::OpKind;
    // The generic flows come from the op table (ir::OpSchema::channel_flow);
    // the op-specific ones follow.
    const ir::ChannelFlow flow = n->schema() != nullptr ? n->schema()->channel_flow : ir::ChannelFlow::kBlocked;
    switch (flow) {
      case ir::ChannelFlow::kElementwise: return tie_all(n->input(0), n->output(0));
      case ir::ChannelFlow::kBroadcast:
        for (const Value* in : n->inputs()) tie_broadcast(in, n->output(0));
        return;
      case ir::ChannelFlow::kBatchAndChannel:
        tie_axis(n->input(0), 0, n->output(0), 0);
        tie_axis(n->input(0), 1, n->output(0), 1);
        return;
      case ir::ChannelFlow::kLeadingAxes: {
        const int r = rank(n->input(0));
        const int k = static_cast<int>(n->attr_int("normalized_ndim"));
        const std::string why = fmt::format("{} '{}' normalizes over it", n->op(), n->name());
        for (int a = 0; a < r; ++a) {
          if (a < r - k) {
            tie_axis(n->input(0), a, n->output(0), a);
          } else {
            block_axis(n->input(0), a, why);
            block_axis(n->output(0), a, why);
          }
        }
        for (size_t i = 1; i < n->num_inputs(); ++i) block_value(n->input(i), why);
        return;
      }
      case ir::ChannelFlow::kBlocked:
        return block_node(n, fmt::format("op '{}' of node '{}' is not traceable for channel pruning", n->op(), n->name()));
      case ir::ChannelFlow::kOpSpecific: break;
    }
    switch (n->kind()) {
      case OpKind::conv2d: return trace_conv(n);
      case OpKind::linear: return trace_linear(n);
      case OpKind::matmul: return trace_matmul(n);
      case OpKind::batch_norm:
        tie_all(n->input(0), n->output(0));
        for (size_t i = 1; i < 5; ++i) tie_axis(n->input(0), 1, n->input(i), 0);
        return;
      case OpKind::softmax: {
        const int r = rank(n->input(0));
        const int64_t axis = norm_axis(n->attr_int("axis"), r);
        for (int a = 0; a < r; ++a) {
          if (a == axis) {
            const std::string why = fmt::format("softmax '{}' normalizes over it", n->name());
            block_axis(n->input(0), a, why);
            block_axis(n->output(0), a, why);
          } else {
            tie_axis(n->input(0), a, n->output(0), a);
          }
        }
        return;
      }
      case OpKind::reduce_mean: return trace_reduce(n);
      case OpKind::concat:
      case OpKind::split: return trace_concat_split(n);
      case OpKind::slice: return trace_slice(n);
      case OpKind::reshape:
      case OpKind::flatten: return trace_reshape(n);
      case OpKind::transpose: {
        const int r = rank(n->input(0));
        std::vector<int64_t> perm(r);
        std::iota(perm.begin(), perm.end(), 0);
        std::swap(perm[norm_axis(n->attr_int("dim0"), r)], perm[norm_axis(n->attr_int("dim1"), r)]);
        for (int a = 0; a < r; ++a) tie_axis(n->input(0), perm[a], n->output(0), a);
        return;
      }
      case OpKind::permute: {
        const int r = rank(n->input(0));
        const auto& perm = n->attr_ints("perm");
        for (int a = 0; a < r && a < static_cast<int>(perm.size()); ++a) {
          tie_axis(n->input(0), norm_axis(perm[a], r), n->output(0), a);
        }
        return;
      }
      case OpKind::embedding: {
        const Value* idx = n->input(0);
        for (int a = 0; a < rank(idx); ++a) tie_axis(idx, a, n->output(0), a);
        tie_axis(n->input(1), 1, n->output(0), rank(n->output(0)) - 1);
        return;
      }
      case OpKind::scaled_dot_product_attention: return trace_attention(n);
      default:
        // The op table says kOpSpecific but no rule is here: a bug, reported as untraceable.
        return block_node(n, fmt::format("op '{}' of node '{}' has no channel rule (a compress bug)", n->op(), n->name()));
    }
  }

  // Marks a conv2d/linear weight as the producer of its output channels and
  // blocks weights the pass cannot slice.
  void note_weight(const Node* n) {
    const Value* w = n->input(1);
    if (!w->is_constant()) return;
    const ir::Tensor& t = w->constant();
    // A pruned (sparse) f32 weight is sliced through its dense values.
    if (t.dtype() != ir::DType::kF32 || t.is_quantized()) {
      block_value(w, fmt::format("weight '{}' is not an f32 tensor", w->name()));
      return;
    }
    producer_spaces_.push_back(space(w, 0));
  }

  void trace_conv(const Node* n) {
    const Value* x = n->input(0);
    const Value* w = n->input(1);
    const Value* y = n->output(0);
    note_weight(n);
    tie_axis(x, 0, y, 0);
    tie_axis(w, 0, y, 1);
    if (n->num_inputs() > 2) tie_axis(n->input(2), 0, y, 1);
    const int64_t groups = n->attr_int("groups");
    if (groups == 1) {
      tie_axis(x, 1, w, 1);
      return;
    }
    // Grouped: each conv group (its input and output channels) is one unit.
    const int64_t cin = size(x, 1) / groups, cout = size(y, 1) / groups;
    for (int64_t g = 0; g < groups; ++g) {
      const int32_t anchor = element(y, 1, g * cout);
      for (int64_t i = 0; i < cin; ++i) unite(anchor, element(x, 1, g * cin + i));
      for (int64_t o = 1; o < cout; ++o) unite(anchor, element(y, 1, g * cout + o));
    }
  }

  void trace_linear(const Node* n) {
    const Value* x = n->input(0);
    const Value* w = n->input(1);
    const Value* y = n->output(0);
    note_weight(n);
    const int r = rank(x);
    for (int a = 0; a + 1 < r; ++a) tie_axis(x, a, y, a);
    tie_axis(x, r - 1, w, 1);
    tie_axis(w, 0, y, r - 1);
    if (n->num_inputs() > 2) tie_axis(n->input(2), 0, y, r - 1);
  }

  void trace_matmul(const Node* n) {
    const Value* a = n->input(0);
    const Value* b = n->input(1);
    const Value* y = n->output(0);
    if (rank(a) < 2 || rank(b) < 2) {
      block_node(n, fmt::format("matmul '{}' has a 1-D operand", n->name()));
      return;
    }
    const int ry = rank(y);
    tie_axis(a, rank(a) - 1, b, rank(b) - 2);
    tie_axis(a, rank(a) - 2, y, ry - 2);
    tie_axis(b, rank(b) - 1, y, ry - 1);
    for (const Value* v : {a, b}) {
      const int off = ry - rank(v);
      for (int d = 0; d + 2 < rank(v); ++d) tie_axis(v, d, y, d + off);
    }
  }

  void trace_reduce(const Node* n) {
    const Value* x = n->input(0);
    const int r = rank(x);
    std::vector<bool> reduced(r, false);
    for (int64_t a : n->attr_ints("axes")) reduced[norm_axis(a, r)] = true;
    const bool keep = n->attr_int("keepdim") != 0;
    int out = 0;
    for (int a = 0; a < r; ++a) {
      if (reduced[a]) {
        block_axis(x, a, fmt::format("reduce_mean '{}' averages over it", n->name()));
        if (keep) ++out;
      } else {
        tie_axis(x, a, n->output(0), out++);
      }
    }
  }

  void trace_concat_split(const Node* n) {
    const bool concat = n->is(ir::OpKind::concat);
    const Value* whole = concat ? n->output(0) : n->input(0);
    const std::vector<Value*>& parts = concat ? n->inputs() : n->outputs();
    const int r = rank(whole);
    const int64_t axis = norm_axis(n->attr_int("axis"), r);
    int64_t offset = 0;
    for (const Value* p : parts) {
      for (int a = 0; a < r; ++a) {
        if (a != axis) {
          tie_axis(p, a, whole, a);
          continue;
        }
        for (int64_t i = 0; i < size(p, a) && offset + i < size(whole, a); ++i) {
          unite(element(p, a, i), element(whole, a, offset + i));
        }
      }
      offset += size(p, axis);
    }
  }

  void trace_slice(const Node* n) {
    const Value* x = n->input(0);
    const Value* y = n->output(0);
    const int r = rank(x);
    const int64_t axis = norm_axis(n->attr_int("axis"), r);
    for (int a = 0; a < r; ++a) {
      if (a != axis) tie_axis(x, a, y, a);
    }
    if (n->attr_int("step") != 1) {
      const std::string why = fmt::format("slice '{}' has a step other than 1", n->name());
      block_axis(x, axis, why);
      block_axis(y, axis, why);
      return;
    }
    const int64_t start = slice_start(n, size(x, axis));
    for (int64_t i = 0; i < size(y, axis); ++i) unite(element(y, axis, i), element(x, axis, start + i));
  }

  void trace_reshape(const Node* n) {
    const Value* x = n->input(0);
    const Value* y = n->output(0);
    const ir::Shape& a = x->shape();
    const ir::Shape& b = y->shape();
    const std::string inner = fmt::format("{} '{}' moves it as an inner dim (not traceable)", n->op(), n->name());
    const std::string mixed = fmt::format("{} '{}' regroups it with other dims (not traceable)", n->op(), n->name());
    std::vector<int> ia, ib;
    for (int d = 0; d < rank(x); ++d) {
      if (a[d] != 1) ia.push_back(d);
    }
    for (int d = 0; d < rank(y); ++d) {
      if (b[d] != 1) ib.push_back(d);
    }
    size_t i = 0, j = 0;
    while (i < ia.size() && j < ib.size()) {
      const size_t i0 = i, j0 = j;
      int64_t pa = a[ia[i]], pb = b[ib[j]];
      bool ok = true;
      while (pa != pb) {
        if (pa < pb) {
          if (++i == ia.size()) {
            ok = false;
            break;
          }
          pa *= a[ia[i]];
        } else {
          if (++j == ib.size()) {
            ok = false;
            break;
          }
          pb *= b[ib[j]];
        }
      }
      if (!ok) break;
      if (i == i0 && j == j0) {
        tie_axis(x, ia[i0], y, ib[j0]);
      } else if (i == i0 && j == j0 + 1 && inner_splits_.count(n)) {  // (outer, inner): tie inner
        const int64_t in = b[ib[j]];
        for (int64_t k = 0; k < b[ib[j0]]; ++k) {
          for (int64_t t = 0; t < in; ++t) unite(element(y, ib[j], t), element(x, ia[i0], k * in + t));
        }
        block_axis(y, ib[j0], fmt::format("{} '{}' moves it as an outer dim (not traceable)", n->op(), n->name()));
      } else if (i == i0) {  // one source dim split into (outer, inner...)
        const int64_t in = pb / b[ib[j0]];
        if (j == j0 + 1) split_reasons_[reason_id(inner)] = n;
        for (int64_t k = 0; k < b[ib[j0]]; ++k) {
          for (int64_t t = 0; t < in; ++t) unite(element(y, ib[j0], k), element(x, ia[i0], k * in + t));
        }
        for (size_t q = j0 + 1; q <= j; ++q) block_axis(y, ib[q], inner);
      } else if (j == j0) {  // (outer, inner...) merged into one dim
        const int64_t in = pa / a[ia[i0]];
        // A channel shuffle's merge blocks what its split tied: blame the split.
        const Node* src = x->producer();
        while (src != nullptr && (src->is(ir::OpKind::transpose) || src->is(ir::OpKind::permute))) src = src->input(0)->producer();
        if (src != nullptr && src->is(ir::OpKind::reshape)) split_reasons_[reason_id(inner)] = src;
        for (int64_t k = 0; k < a[ia[i0]]; ++k) {
          for (int64_t t = 0; t < in; ++t) unite(element(x, ia[i0], k), element(y, ib[j0], k * in + t));
        }
        for (size_t q = i0 + 1; q <= i; ++q) block_axis(x, ia[q], inner);
      } else {
        for (size_t q = i0; q <= i; ++q) block_axis(x, ia[q], mixed);
        for (size_t q = j0; q <= j; ++q) block_axis(y, ib[q], mixed);
      }
      ++i;
      ++j;
    }
    for (; i < ia.size(); ++i) block_axis(x, ia[i], mixed);
    for (; j < ib.size(); ++j) block_axis(y, ib[j], mixed);
    // Size-1 dims carry no channels; blocking them keeps a producer with a
    // single output from being emptied through them.
    for (int d = 0; d < rank(x); ++d) {
      if (a[d] == 1) block_axis(x, d, mixed);
    }
    for (int d = 0; d < rank(y); ++d) {
      if (b[d] == 1) block_axis(y, d, mixed);
    }
  }

  void trace_attention(const Node* n) {
    const Value* q = n->input(0);
    const Value* k = n->input(1);
    const Value* v = n->input(2);
    const Value* y = n->output(0);
    const int ry = rank(y);
    for (const Value* t : {q, k, v}) {
      const int off = ry - rank(t);
      for (int d = 0; d + 2 < rank(t); ++d) tie_axis(t, d, y, d + off);
    }
    tie_axis(q, rank(q) - 2, y, ry - 2);
    tie_axis(k, rank(k) - 2, v, rank(v) - 2);
    tie_axis(v, rank(v) - 1, y, ry - 1);
    tie_axis(q, rank(q) - 1, k, rank(k) - 1);
    const std::string why =
        fmt::format("scaled_dot_product_attention '{}' contracts over it (the scale depends on it)", n->name());
    block_axis(q, rank(q) - 1, why);
    block_axis(k, rank(k) - 1, why);
    if (n->num_inputs() > 3) {
      const Value* m = n->input(3);
      const int rm = rank(m);
      // The mask broadcasts to [batch..., L, S].
      if (rm >= 1) tie_axis(m, rm - 1, k, rank(k) - 2);
      if (rm >= 2) tie_axis(m, rm - 2, q, rank(q) - 2);
      for (int d = 0; d + 2 < rm; ++d) {
        const int yd = d + (ry - rm);
        if (yd >= 0) tie_axis(m, d, y, yd);
      }
    }
  }

  static int64_t slice_start(const Node* n, int64_t size) {
    int64_t s = n->attr_int("start");
    if (s < 0) s += size;
    return std::clamp<int64_t>(s, 0, size);
  }

  // --- groups ---------------------------------------------------------------
  ChannelMember::Role role_of(const Value* v, int64_t axis) const {
    using Role = ChannelMember::Role;
    if (!v->is_constant()) return Role::kActivation;
    for (const ir::Use& u : v->uses()) {
      if (const ir::WeightedLayerSpec* layer = sliceable_layer(*u.user)) {
        if (u.input_index == layer->weight_input) return axis == 0 ? Role::kProducerWeight : Role::kConsumerWeight;
        if (u.input_index == layer->bias_input) return Role::kProducerBias;
      }
      if (u.user->is(ir::OpKind::batch_norm)) {
        if (u.input_index == 1) return Role::kBatchNormWeight;
        if (u.input_index == 2) return Role::kBatchNormBias;
        return Role::kBatchNormStat;
      }
    }
    return Role::kConstant;
  }

  ChannelAnalysis collect() {
    for (const Value* v : graph_.inputs()) block_value(v, fmt::format("it reaches graph input '{}'", v->name()));
    for (const Value* v : graph_.outputs()) block_value(v, fmt::format("it reaches graph output '{}'", v->name()));
    for (const Node* n : graph_.nodes()) trace(n);

    const size_t total = parent_.size();
    std::vector<int32_t> root(total);
    for (size_t e = 0; e < total; ++e) root[e] = find(static_cast<int32_t>(e));
    // Candidate units: classes with a producer row.
    std::vector<char> candidate(total, 0);
    for (int64_t s : producer_spaces_) {
      const Space& sp = spaces_[static_cast<size_t>(s)];
      for (int64_t i = 0; i < sp.size; ++i) candidate[root[sp.base + i]] = 1;
    }
    std::vector<int32_t> reason(total, -1);  // per root: first blocking reason
    for (size_t e = 0; e < total; ++e) {
      if (blocked_[e] >= 0 && reason[root[e]] < 0) reason[root[e]] = blocked_[e];
    }
    // Spaces each unit touches (in space order, so a unit's signature is sorted).
    std::unordered_map<int32_t, std::vector<int32_t>> signature;
    for (size_t s = 0; s < spaces_.size(); ++s) {
      const Space& sp = spaces_[s];
      for (int64_t i = 0; i < sp.size; ++i) {
        const int32_t r = root[sp.base + i];
        if (!candidate[r]) continue;
        auto& sig = signature[r];
        if (sig.empty() || sig.back() != static_cast<int32_t>(s)) sig.push_back(static_cast<int32_t>(s));
      }
    }
    // Group the units by signature; units in order of their root (first element).
    std::map<std::vector<int32_t>, std::vector<int32_t>> by_signature;
    std::vector<int32_t> roots;
    for (auto& [r, sig] : signature) roots.push_back(r);
    std::sort(roots.begin(), roots.end());
    for (int32_t r : roots) by_signature[signature[r]].push_back(r);

    ChannelAnalysis result;
    std::unordered_map<const Node*, size_t> order;
    for (const Node* n : graph_.nodes()) order.emplace(n, order.size());
    for (auto& [sig, units] : by_signature) {
      ChannelGroup g;
      g.num_units = static_cast<int64_t>(units.size());
      std::unordered_map<int32_t, size_t> unit_index;
      for (size_t u = 0; u < units.size(); ++u) unit_index[units[u]] = u;
      std::vector<std::pair<size_t, std::string>> producers;
      for (int32_t s : sig) {
        const Space& sp = spaces_[static_cast<size_t>(s)];
        ChannelMember m;
        m.value = sp.value;
        m.axis = sp.axis;
        m.role = role_of(sp.value, sp.axis);
        m.indices.resize(units.size());
        for (int64_t i = 0; i < sp.size; ++i) {
          auto it = unit_index.find(root[sp.base + i]);
          if (it != unit_index.end()) m.indices[it->second].push_back(i);
        }
        if (m.role == ChannelMember::Role::kProducerWeight) {
          for (const ir::Use& u : sp.value->uses()) {
            const ir::WeightedLayerSpec* layer = sliceable_layer(*u.user);
            if (layer != nullptr && u.input_index == layer->weight_input) {
              producers.emplace_back(order.at(u.user), u.user->name());
            }
          }
        }
        g.members.push_back(std::move(m));
      }
      std::sort(producers.begin(), producers.end());
      producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
      for (auto& p : producers) g.producers.push_back(p.second);
      for (const ChannelMember& m : g.members) {
        if (m.role == ChannelMember::Role::kProducerWeight) {
          g.unit_width = static_cast<int64_t>(m.indices[0].size());
          break;
        }
      }
      for (int32_t r : units) {
        if (reason[r] >= 0) {
          g.prunable = false;
          g.reason = reasons_[static_cast<size_t>(reason[r])];
          auto split = split_reasons_.find(reason[r]);
          if (split != split_reasons_.end()) blocking_splits.insert(split->second);
          break;
        }
      }
      if (g.prunable) {
        for (const ChannelMember& m : g.members) {
          if (m.role != ChannelMember::Role::kProducerWeight) continue;
          for (const auto& idx : m.indices) prunable_rows += static_cast<int64_t>(idx.size());
        }
      }
      result.groups.push_back(std::move(g));
    }
    // Graph order of the first producer, so reports and ids are stable.
    auto first = [&](const ChannelGroup& g) {
      return g.producers.empty() ? order.size() : order.at(graph_.find_node(g.producers[0]));
    };
    std::stable_sort(result.groups.begin(), result.groups.end(),
                     [&](const ChannelGroup& a, const ChannelGroup& b) { return first(a) < first(b); });
    for (size_t i = 0; i < result.groups.size(); ++i) result.groups[i].id = static_cast<int64_t>(i);
    return result;
  }

 private:
  const ir::Graph& graph_;
  std::vector<Space> spaces_;
  std::unordered_map<const Value*, int64_t> first_space_;
  std::vector<int32_t> parent_;
  std::vector<int32_t> blocked_;
  std::vector<std::string> reasons_;
  std::unordered_map<std::string, int32_t> reason_ids_;
  std::vector<int64_t> producer_spaces_;
  std::set<const Node*> inner_splits_;
  std::unordered_map<int32_t, const Node*> split_reasons_;  // reason id -> the 2-way split reshape it blames

 public:
  // Filled by collect(): 2-way split reshapes that block some group, and the
  // producer rows in prunable groups (what flipping splits tries to raise).
  std::set<const Node*> blocking_splits;
  int64_t prunable_rows = 0;
};

}  // namespace

std::string ChannelGroup::label() const {
  if (producers.empty()) return fmt::format("group {}", id);
  if (producers.size() == 1) return producers[0];
  return fmt::format("{} (+{} coupled)", producers[0], producers.size() - 1);
}

const char* role_name(ChannelMember::Role role) {
  switch (role) {
    case ChannelMember::Role::kProducerWeight:
      return "producer_weight";
    case ChannelMember::Role::kProducerBias:
      return "producer_bias";
    case ChannelMember::Role::kBatchNormWeight:
      return "bn_weight";
    case ChannelMember::Role::kBatchNormBias:
      return "bn_bias";
    case ChannelMember::Role::kBatchNormStat:
      return "bn_stat";
    case ChannelMember::Role::kConsumerWeight:
      return "consumer_weight";
    case ChannelMember::Role::kConstant:
      return "constant";
    case ChannelMember::Role::kActivation:
      return "activation";
  }
  return "?";
}

// Note [Reshape splits]
// A reshape that splits one dim into (outer, inner) can tie only one of the
// two to the source channels. Outer is right for attention heads ([E] ->
// [H, hd]: a head is hd consecutive channels); inner is right for a channel
// shuffle ([C] -> [g, C/g], transpose, merge: channel j of every one of the
// g chunks moves together, so each chunk keeps the same size). The analysis
// first ties outer everywhere; when a group is blocked by such a split, it
// re-runs with the blocking splits tying inner and keeps that choice if more
// producer channels become prunable, until nothing improves.
Expected<ChannelAnalysis> analyze_channel_groups(const ir::Graph& graph) {
  std::set<const Node*> inner;
  Tracer tracer(graph, inner);
  COMPRESS_RETURN_IF_ERROR(tracer.build_spaces());
  ChannelAnalysis best = tracer.collect();
  int64_t best_rows = tracer.prunable_rows;
  std::set<const Node*> candidates = tracer.blocking_splits;
  for (int round = 0; round < 8; ++round) {
    std::set<const Node*> trial = inner;
    bool added = false;
    for (const Node* n : candidates) added = trial.insert(n).second || added;
    if (!added) break;
    Tracer retry(graph, trial);
    COMPRESS_RETURN_IF_ERROR(retry.build_spaces());
    ChannelAnalysis analysis = retry.collect();
    if (retry.prunable_rows <= best_rows) break;
    best = std::move(analysis);
    best_rows = retry.prunable_rows;
    inner = std::move(trial);
    candidates = retry.blocking_splits;
  }
  return best;
}

}  // namespace compress::analysis
