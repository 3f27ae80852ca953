// The reference backend: kernel dispatch per node, and a plan that walks the graph in order.
#include <array>
#include <chrono>
#include <unordered_map>

#include "compress/ir/op_schema.h"
#include "compress/ir/verifier.h"
#include "compress/runtime/reference.h"
#include "kernels.h"

namespace compress::runtime {
namespace {

namespace ref = reference;
using ir::DType;
using ir::Tensor;
constexpr StatusCode kBad = StatusCode::kInvalidArgument;

struct KernelEntry {
  ref::KernelFn fn = nullptr;
  // f16/bf16 float inputs are widened to f32 and float outputs narrowed back
  // to the node's output dtype. Data movement ops keep their dtype instead.
  bool computes_in_f32 = true;
};

using ir::OpKind;

// The kernel of every op, indexed by OpKind; elementwise ops come from
// elementwise.cpp's own table. An op with no row here has no reference
// kernel (tests/runtime/test_op_coverage.cpp fails on that).
const std::array<KernelEntry, ir::kNumOpKinds>& kernel_table() {
  static const auto table = [] {
    std::array<KernelEntry, ir::kNumOpKinds> t{};
    auto set = [&t](OpKind kind, ref::KernelFn fn, bool computes_in_f32) {
      t[static_cast<size_t>(kind)] = {fn, computes_in_f32};
    };
    for (size_t i = 0; i < ir::kNumOpKinds; ++i) {
      if (ref::KernelFn fn = ref::elementwise_kernel(static_cast<OpKind>(i))) set(static_cast<OpKind>(i), fn, true);
    }
    set(OpKind::conv2d, ref::conv2d, true);
    set(OpKind::linear, ref::linear, true);
    set(OpKind::matmul, ref::matmul, true);
    set(OpKind::qconv2d, ref::qconv2d, true);
    set(OpKind::qlinear, ref::qlinear, true);
    set(OpKind::qmatmul, ref::qmatmul, true);
    set(OpKind::qadd, ref::qadd, true);
    set(OpKind::batch_norm, ref::batch_norm, true);
    set(OpKind::layer_norm, ref::layer_norm, true);
    set(OpKind::rms_norm, ref::rms_norm, true);
    set(OpKind::concat, ref::concat, false);
    set(OpKind::split, ref::split, false);
    set(OpKind::slice, ref::slice, false);
    set(OpKind::reshape, ref::reshape, false);
    set(OpKind::flatten, ref::flatten, false);
    set(OpKind::transpose, ref::transpose, false);
    set(OpKind::permute, ref::permute, false);
    set(OpKind::max_pool2d, ref::max_pool2d, true);
    set(OpKind::avg_pool2d, ref::avg_pool2d, true);
    set(OpKind::adaptive_avg_pool2d, ref::adaptive_pool2d, true);
    set(OpKind::adaptive_max_pool2d, ref::adaptive_pool2d, true);
    set(OpKind::reduce_mean, ref::reduce_mean, true);
    set(OpKind::softmax, ref::softmax, true);
    set(OpKind::embedding, ref::embedding, true);
    set(OpKind::scaled_dot_product_attention, ref::attention, true);
    set(OpKind::quantize, ref::quantize, true);
    set(OpKind::dequantize, ref::dequantize, true);
    set(OpKind::fake_quant, ref::fake_quant, true);
    return t;
  }();
  return table;
}

const KernelEntry* find_kernel(OpKind kind) {
  if (kind == OpKind::kUnknown) return nullptr;
  const KernelEntry& e = kernel_table()[static_cast<size_t>(kind)];
  return e.fn != nullptr ? &e : nullptr;
}

bool is_half(DType d) { return d == DType::kF16 || d == DType::kBF16; }

Expected<Tensor> convert_float(const Tensor& t, DType to) {
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, Tensor::zeros(to, t.shape()));
  const int64_t n = t.numel();
  if (to == DType::kF32) {
    const uint16_t* src = t.data<uint16_t>();
    float* dst = out.data<float>();
    for (int64_t i = 0; i < n; ++i)
      dst[i] = t.dtype() == DType::kF16 ? ir::half_to_float(src[i]) : ir::bf16_to_float(src[i]);
  } else {
    const float* src = t.data<float>();
    uint16_t* dst = out.data<uint16_t>();
    for (int64_t i = 0; i < n; ++i) dst[i] = to == DType::kF16 ? ir::float_to_half(src[i]) : ir::float_to_bf16(src[i]);
  }
  return out;
}

std::string describe_inputs(const std::vector<Tensor>& inputs) {
  std::string s;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i) s += ", ";
    s += inputs[i].defined()
             ? fmt::format("{}{}", ir::dtype_name(inputs[i].dtype()), ir::shape_to_string(inputs[i].shape()))
             : std::string("<undefined>");
  }
  return s;
}

Status check_node(const ir::Node& node, const std::vector<Tensor>& inputs) {
  const ir::OpSchema* schema = node.schema() ? node.schema() : ir::find_op(node.op());
  COMPRESS_CHECK(schema != nullptr && find_kernel(node.kind()) != nullptr, StatusCode::kUnsupported,
                 "no reference kernel for op '{}'", node.op());
  const int n = static_cast<int>(inputs.size());
  COMPRESS_CHECK(n >= schema->min_inputs && (schema->max_inputs < 0 || n <= schema->max_inputs), kBad,
                 "takes {} to {} inputs, got {}", schema->min_inputs,
                 schema->max_inputs < 0 ? std::string("any number of") : std::to_string(schema->max_inputs), n);
  for (const ir::AttrSpec& spec : schema->attrs) {
    auto it = node.attrs().find(std::string(spec.name));
    COMPRESS_CHECK(it != node.attrs().end() && ir::attr_kind(it->second) == spec.kind, kBad,
                   "attribute '{}' is missing or not {} (create nodes through Graph::add_node, which fills defaults)",
                   spec.name, ir::attr_kind_name(spec.kind));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    COMPRESS_CHECK(inputs[i].defined(), kBad, "input {} is undefined", i);
  }
  return Status::ok();
}

Expected<std::vector<Tensor>> run_node(const ir::Node& node, const std::vector<Tensor>& inputs) {
  COMPRESS_RETURN_IF_ERROR(check_node(node, inputs));
  const KernelEntry& entry = *find_kernel(node.kind());
  std::vector<Tensor> prepared;
  prepared.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Tensor dense = t;
    if (t.is_sparse()) {
      COMPRESS_ASSIGN_OR_RETURN(dense, t.to_dense());
    }
    if (entry.computes_in_f32 && is_half(dense.dtype())) {
      COMPRESS_ASSIGN_OR_RETURN(dense, convert_float(dense, DType::kF32));
    }
    prepared.push_back(std::move(dense));
  }
  COMPRESS_ASSIGN_OR_RETURN(std::vector<Tensor> outputs, entry.fn(node, prepared));
  COMPRESS_INTERNAL_ASSERT(outputs.size() == node.num_outputs(), "{} kernel returned {} outputs for {}", node.op(),
                           outputs.size(), node.num_outputs());
  for (size_t i = 0; i < outputs.size(); ++i) {
    const DType declared = node.output(i)->dtype();
    if (entry.computes_in_f32 && is_half(declared) && outputs[i].dtype() == DType::kF32) {
      COMPRESS_ASSIGN_OR_RETURN(outputs[i], convert_float(outputs[i], declared));
    }
  }
  return outputs;
}

// Note [Reference plan]
// The plan owns a clone of the graph (tensors shared, nodes its own), a slot
// per value, and for each step the slots whose last use it is, so
// intermediate tensors are freed as soon as nothing needs them.
class ReferencePlan final : public ExecutionPlan {
 public:
  static Expected<std::unique_ptr<ExecutionPlan>> create(const ir::Graph& source) {
    auto plan = std::unique_ptr<ReferencePlan>(new ReferencePlan());
    plan->graph_ = source.clone();
    ir::Graph& g = plan->graph_;
    std::unordered_map<const ir::Value*, int> slot;
    auto slot_of = [&](const ir::Value* v) {
      auto [it, inserted] = slot.emplace(v, static_cast<int>(slot.size()));
      return it->second;
    };
    for (const ir::Value* v : g.inputs()) plan->input_slots_.push_back(slot_of(v));
    for (const ir::Value* c : g.constants()) {
      Tensor t = c->constant();
      if (t.is_sparse()) {
        // Densified once here, not on every run.
        auto dense = t.to_dense();
        if (!dense) return dense.status().with_context(fmt::format("densifying constant '{}'", c->name()));
        t = std::move(*dense);
      }
      plan->constants_.emplace_back(slot_of(c), std::move(t));
    }
    const std::vector<ir::Node*> nodes = g.nodes();
    for (ir::Node* node : nodes) {
      // Nodes read back from files may lack defaulted attributes.
      ir::AttributeMap attrs = node->attrs();
      if (node->schema() != nullptr) {
        COMPRESS_RETURN_IF_ERROR(ir::normalize_attributes(*node->schema(), &attrs)
                                     .with_context(fmt::format("node '{}' ({})", node->name(), node->op())));
        for (auto& [name, value] : attrs) node->set_attr(name, value);
      }
      Step step;
      step.node = node;
      for (const ir::Value* v : node->inputs()) step.inputs.push_back(slot_of(v));
      for (const ir::Value* v : node->outputs()) step.outputs.push_back(slot_of(v));
      plan->steps_.push_back(std::move(step));
    }
    for (const ir::Value* v : g.outputs()) plan->output_slots_.push_back(slot_of(v));
    plan->num_slots_ = static_cast<int>(slot.size());

    // Last use of every non-constant slot; graph outputs are never released.
    std::vector<int> last_use(slot.size(), -1);
    for (size_t s = 0; s < plan->steps_.size(); ++s) {
      for (int in : plan->steps_[s].inputs) last_use[in] = static_cast<int>(s);
      for (int out : plan->steps_[s].outputs) last_use[out] = std::max(last_use[out], static_cast<int>(s));
    }
    std::vector<bool> keep(slot.size(), false);
    for (int o : plan->output_slots_) keep[o] = true;
    for (const auto& c : plan->constants_) keep[c.first] = true;
    for (size_t v = 0; v < last_use.size(); ++v) {
      if (!keep[v] && last_use[v] >= 0) plan->steps_[last_use[v]].release.push_back(static_cast<int>(v));
    }
    return std::unique_ptr<ExecutionPlan>(std::move(plan));
  }

  Expected<std::vector<Tensor>> run(const std::vector<Tensor>& inputs) override {
    const auto& declared = graph_.inputs();
    COMPRESS_CHECK(inputs.size() == declared.size(), kBad, "the graph takes {} inputs, got {}", declared.size(),
                   inputs.size());
    std::vector<Tensor> slots(static_cast<size_t>(num_slots_));
    for (const auto& [s, t] : constants_) slots[s] = t;
    for (size_t i = 0; i < inputs.size(); ++i) {
      COMPRESS_RETURN_IF_ERROR(
          check_input(*declared[i], inputs[i]).with_context(fmt::format("input {} '{}'", i, declared[i]->name())));
      slots[input_slots_[i]] = inputs[i];
    }
    std::vector<Tensor> args;
    for (size_t i = 0; i < steps_.size(); ++i) {
      const Step& step = steps_[i];
      args.clear();
      for (int s : step.inputs) args.push_back(slots[s]);
      const auto start = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      auto outputs = run_reference_node(*step.node, args);
      if (!outputs) return outputs.status();
      if (profiling_) {
        profiled_ms_[i] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      }
      for (size_t o = 0; o < step.outputs.size(); ++o) slots[step.outputs[o]] = std::move((*outputs)[o]);
      for (int s : step.release) slots[s] = Tensor();
    }
    std::vector<Tensor> results;
    for (int s : output_slots_) results.push_back(slots[s]);
    if (profiling_) ++profiled_runs_;
    return results;
  }

  // One step per node, each on its own reference kernel; no fallbacks.
  PlanReport describe() const override {
    PlanReport r;
    r.backend = "reference";
    for (size_t i = 0; i < steps_.size(); ++i) {
      const ir::Node& n = *steps_[i].node;
      PlanStep step;
      step.kind = n.op();
      step.nodes = {n.name()};
      step.implementation = "reference";
      for (const ir::Value* v : n.outputs()) {
        step.detail += fmt::format("{}{}{}", step.detail.empty() ? "-> " : ", ", ir::dtype_name(v->dtype()),
                                   ir::shape_to_string(v->shape()));
      }
      step.profiled_ms = profiled_ms_.empty() ? 0.0 : profiled_ms_[i];
      r.steps.push_back(std::move(step));
    }
    r.profiled_runs = profiled_runs_;
    r.text = fmt::format("reference plan: {} steps, one per node (shapes as declared; the batch may differ)\n",
                         r.steps.size()) +
             plan_steps_text(r.steps) + plan_fallbacks_text(r.fallbacks);
    r.profile_text = plan_profile_text(r.steps, profiled_runs_);
    return r;
  }

  Status set_profiling(bool on) override {
    if (on && profiled_ms_.empty()) profiled_ms_.assign(steps_.size(), 0.0);
    profiling_ = on;
    return Status::ok();
  }

 private:
  struct Step {
    const ir::Node* node = nullptr;
    std::vector<int> inputs, outputs, release;
  };

  ReferencePlan() = default;

  // The batch (dim 0) may differ from the declared shape; nothing else may.
  static Status check_input(const ir::Value& value, const Tensor& t) {
    const ir::Shape& shape = value.shape();
    bool ok = t.defined() && t.dtype() == value.dtype() && t.rank() == static_cast<int64_t>(shape.size());
    for (size_t d = 1; ok && d < shape.size(); ++d) ok = t.shape()[d] == shape[d];
    if (ok) return Status::ok();
    return invalid_argument("expected {}{} (any batch), got {}", ir::dtype_name(value.dtype()),
                            ir::shape_to_string(shape),
                            t.defined() ? fmt::format("{}{}", ir::dtype_name(t.dtype()), ir::shape_to_string(t.shape()))
                                        : std::string("an undefined tensor"));
  }

  ir::Graph graph_;
  std::vector<Step> steps_;
  std::vector<std::pair<int, Tensor>> constants_;
  std::vector<int> input_slots_, output_slots_;
  int num_slots_ = 0;
  bool profiling_ = false;
  std::vector<double> profiled_ms_;  // per step, over the profiled runs
  int64_t profiled_runs_ = 0;
};

class ReferenceBackend final : public Backend {
 public:
  std::string_view name() const override { return "reference"; }

  OpCoverage op_coverage(OpKind kind) const override {
    if (find_kernel(kind) != nullptr) return {true, ""};
    return {false, ""};  // every op has a reference kernel: an empty reason fails the coverage test
  }

  SupportDecision supports(const ir::Node& node) const override {
    if (find_kernel(node.kind()) != nullptr) return {};
    return {false, fmt::format("no reference kernel for op '{}'", node.op())};
  }

  Expected<std::unique_ptr<ExecutionPlan>> compile(const ir::Graph& graph) override {
    COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("reference backend: the graph does not verify"));
    for (const ir::Node* node : graph.nodes()) {
      const SupportDecision d = supports(*node);
      COMPRESS_CHECK(d.supported, StatusCode::kUnsupported, "reference backend: node '{}': {}", node->name(), d.reason);
    }
    return ReferencePlan::create(graph);
  }
};

}  // namespace

Expected<std::vector<Tensor>> run_reference_node(const ir::Node& node, const std::vector<Tensor>& inputs) {
  auto result = run_node(node, inputs);
  if (!result) {
    return result.status().with_context(
        fmt::format("node '{}' ({}) on inputs {}", node.name(), node.op(), describe_inputs(inputs)));
  }
  return result;
}

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

Expected<std::vector<Tensor>> run_reference(const ir::Graph& graph, const std::vector<Tensor>& inputs) {
  auto backend = make_reference_backend();
  COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<ExecutionPlan> plan, backend->compile(graph));
  return plan->run(inputs);
}

}  // namespace compress::runtime
