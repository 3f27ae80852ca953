// The shared backend/reference partitioner (Note [Partitions] in partition.h).
#include "compress/runtime/partition.h"

#include <unordered_map>
#include <unordered_set>

#include "compress/ir/verifier.h"
#include "compress/runtime/reference.h"
#include "compress/support/check.h"

namespace compress::runtime {
namespace {

// Fills each partition's boundary values from its nodes.
void find_boundaries(const ir::Graph& graph, std::vector<Partition>& parts) {
  std::unordered_map<const ir::Node*, size_t> part_of;
  for (size_t p = 0; p < parts.size(); ++p) {
    for (const ir::Node* n : parts[p].nodes) part_of[n] = p;
  }
  for (size_t p = 0; p < parts.size(); ++p) {
    std::unordered_set<const ir::Value*> seen;
    for (const ir::Node* n : parts[p].nodes) {
      for (const ir::Value* in : n->inputs()) {
        if (in->is_constant() || !seen.insert(in).second) continue;
        const ir::Node* producer = in->producer();
        if (producer == nullptr || part_of.at(producer) != p) parts[p].inputs.push_back(in);
      }
      for (const ir::Value* out : n->outputs()) {
        bool read_outside = graph.is_output(out);
        for (const ir::Use& use : out->uses()) read_outside = read_outside || part_of.at(use.user) != p;
        if (read_outside) parts[p].outputs.push_back(out);
      }
    }
  }
}

// A value's tensor during a partitioned run: a slot, or a constant.
struct Source {
  int slot = -1;
  ir::Tensor constant;
};

class PartitionedPlan : public ExecutionPlan {
 public:
  struct Piece {
    bool on_backend = false;
    std::unique_ptr<ExecutionPlan> plan;
    std::vector<int> inputs, outputs;  // slots
    size_t num_nodes = 0;
  };

  PartitionedPlan(std::string backend, std::vector<Piece> pieces, std::vector<Source> graph_outputs, int num_slots,
                  size_t num_inputs, std::vector<PlanFallback> fallbacks)
      : backend_(std::move(backend)),
        pieces_(std::move(pieces)),
        graph_outputs_(std::move(graph_outputs)),
        num_slots_(num_slots),
        num_inputs_(num_inputs),
        fallbacks_(std::move(fallbacks)) {}

  // Slots 0..num_inputs-1 are the graph inputs.
  Expected<std::vector<ir::Tensor>> run(const std::vector<ir::Tensor>& inputs) override {
    COMPRESS_CHECK(inputs.size() == num_inputs_, StatusCode::kInvalidArgument,
                   "{} plan: expected {} inputs, got {}", backend_, num_inputs_, inputs.size());
    std::vector<ir::Tensor> slots(static_cast<size_t>(num_slots_));
    for (size_t i = 0; i < inputs.size(); ++i) slots[i] = inputs[i];
    for (size_t p = 0; p < pieces_.size(); ++p) {
      Piece& piece = pieces_[p];
      std::vector<ir::Tensor> in;
      in.reserve(piece.inputs.size());
      for (int s : piece.inputs) in.push_back(slots[static_cast<size_t>(s)]);
      auto out = piece.plan->run(in);
      if (!out) {
        return out.status().with_context(
            fmt::format("partition {} ({})", p + 1, piece.on_backend ? backend_ : std::string("reference")));
      }
      COMPRESS_CHECK(out->size() == piece.outputs.size(), StatusCode::kInternal,
                     "partition {}: {} outputs where {} were expected", p + 1, out->size(), piece.outputs.size());
      for (size_t o = 0; o < out->size(); ++o) slots[static_cast<size_t>(piece.outputs[o])] = std::move((*out)[o]);
    }
    std::vector<ir::Tensor> result;
    for (const Source& s : graph_outputs_) result.push_back(s.slot >= 0 ? slots[static_cast<size_t>(s.slot)] : s.constant);
    return result;
  }

  PlanReport describe() const override {
    PlanReport r;
    r.backend = backend_ + "+reference";
    r.fallbacks = fallbacks_;
    std::string text = fmt::format("{} partitions ({} on {}, {} on the reference kernels)\n", pieces_.size(),
                                   count(true), backend_, count(false));
    for (size_t p = 0; p < pieces_.size(); ++p) {
      const PlanReport piece = pieces_[p].plan->describe();
      const std::string where = pieces_[p].on_backend ? backend_ : std::string("reference");
      text += fmt::format("partition {} on {}: {} nodes, {} inputs, {} outputs\n", p + 1, where, pieces_[p].num_nodes,
                          pieces_[p].inputs.size(), pieces_[p].outputs.size());
      for (PlanStep step : piece.steps) {
        step.detail = step.detail.empty() ? fmt::format("partition {}", p + 1)
                                          : fmt::format("partition {}; {}", p + 1, step.detail);
        r.steps.push_back(std::move(step));
      }
      r.profiled_runs = std::max(r.profiled_runs, piece.profiled_runs);
    }
    r.text = text + plan_steps_text(r.steps) + plan_fallbacks_text(r.fallbacks);
    r.profile_text = plan_profile_text(r.steps, r.profiled_runs);
    return r;
  }

  Status set_profiling(bool on) override {
    for (Piece& piece : pieces_) COMPRESS_RETURN_IF_ERROR(piece.plan->set_profiling(on));
    return Status::ok();
  }

 private:
  size_t count(bool on_backend) const {
    size_t n = 0;
    for (const Piece& p : pieces_) n += p.on_backend == on_backend ? 1 : 0;
    return n;
  }

  std::string backend_;
  std::vector<Piece> pieces_;
  std::vector<Source> graph_outputs_;
  int num_slots_;
  size_t num_inputs_;
  std::vector<PlanFallback> fallbacks_;
};

}  // namespace

Expected<PartitionResult> partition_graph(const ir::Graph& graph, const Backend& backend) {
  const std::unique_ptr<Backend> reference = make_reference_backend();
  PartitionResult result;
  for (const ir::Node* node : graph.nodes()) {
    const SupportDecision decision = backend.supports(*node);
    if (!decision.supported) {
      const SupportDecision fallback = reference->supports(*node);
      COMPRESS_CHECK(fallback.supported, StatusCode::kUnsupported,
                     "{} backend: node '{}' ({}): {}; the reference kernels cannot run it either: {}", backend.name(),
                     node->name(), node->op(), decision.reason, fallback.reason);
      result.fallbacks.push_back({node->name(), node->op(), decision.reason});
    }
    if (result.partitions.empty() || result.partitions.back().on_backend != decision.supported) {
      result.partitions.push_back(Partition{decision.supported, {}, {}, {}});
    }
    result.partitions.back().nodes.push_back(node);
  }
  find_boundaries(graph, result.partitions);
  return result;
}

Expected<ir::Graph> extract_partition(const ir::Graph& graph, const Partition& partition) {
  ir::Graph sub;
  sub.name = graph.name;
  std::unordered_map<const ir::Value*, ir::Value*> mapped;
  for (const ir::Value* in : partition.inputs) {
    COMPRESS_ASSIGN_OR_RETURN(mapped[in], sub.add_input(in->name(), in->type()));
  }
  for (const ir::Node* node : partition.nodes) {
    std::vector<ir::Value*> inputs;
    for (const ir::Value* in : node->inputs()) {
      auto it = mapped.find(in);
      if (it == mapped.end()) {
        COMPRESS_CHECK(in->is_constant(), StatusCode::kInternal,
                       "partition: node '{}' reads '{}', which is neither an input of its partition nor a constant",
                       node->name(), in->name());
        COMPRESS_ASSIGN_OR_RETURN(ir::Value * c, sub.add_constant(in->name(), in->constant()));
        it = mapped.emplace(in, c).first;
      }
      inputs.push_back(it->second);
    }
    ir::Node* copy = sub.clone_node(*node, inputs);
    for (size_t o = 0; o < node->num_outputs(); ++o) mapped[node->output(o)] = copy->output(o);
  }
  std::vector<ir::Value*> outputs;
  for (const ir::Value* out : partition.outputs) outputs.push_back(mapped.at(out));
  sub.set_outputs(std::move(outputs));
  COMPRESS_RETURN_IF_ERROR(ir::verify(sub).with_context("partition"));
  return sub;
}

Expected<std::unique_ptr<ExecutionPlan>> compile_partitioned(const ir::Graph& graph, Backend& backend) {
  COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context(fmt::format("{} backend", backend.name())));
  COMPRESS_ASSIGN_OR_RETURN(PartitionResult parts, partition_graph(graph, backend));
  if (parts.fallbacks.empty()) return backend.compile(graph);
  const std::unique_ptr<Backend> reference = make_reference_backend();
  // Slots: graph inputs first, then every partition output.
  std::unordered_map<const ir::Value*, int> slot;
  for (const ir::Value* in : graph.inputs()) slot.emplace(in, static_cast<int>(slot.size()));
  std::vector<PartitionedPlan::Piece> pieces;
  for (size_t p = 0; p < parts.partitions.size(); ++p) {
    const Partition& part = parts.partitions[p];
    COMPRESS_ASSIGN_OR_RETURN(ir::Graph sub, extract_partition(graph, part));
    PartitionedPlan::Piece piece;
    piece.on_backend = part.on_backend;
    piece.num_nodes = part.nodes.size();
    auto plan = part.on_backend ? backend.compile(sub) : reference->compile(sub);
    if (!plan) return plan.status().with_context(fmt::format("partition {}", p + 1));
    piece.plan = std::move(*plan);
    for (const ir::Value* in : part.inputs) piece.inputs.push_back(slot.at(in));
    for (const ir::Value* out : part.outputs) {
      const int s = static_cast<int>(slot.size());
      slot.emplace(out, s);
      piece.outputs.push_back(s);
    }
    pieces.push_back(std::move(piece));
  }
  std::vector<Source> outputs;
  for (const ir::Value* out : graph.outputs()) {
    Source s;
    if (out->is_constant()) {
      s.constant = out->constant();
    } else {
      s.slot = slot.at(out);
    }
    outputs.push_back(std::move(s));
  }
  return std::unique_ptr<ExecutionPlan>(std::make_unique<PartitionedPlan>(
      std::string(backend.name()), std::move(pieces), std::move(outputs), static_cast<int>(slot.size()),
      graph.inputs().size(), std::move(parts.fallbacks)));
}

}  // namespace compress::runtime
