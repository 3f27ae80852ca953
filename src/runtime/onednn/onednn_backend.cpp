// The onednn Backend and its plan: a cache of per-input-shape plans over one prepared graph.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <list>
#include <map>

#include "builder.h"
#include "compress/ir/verifier.h"
#include "compress/runtime/onednn.h"
#include "compress/runtime/partition.h"
#include "compress/runtime/reference.h"
#include "compress/support/threads.h"

namespace compress::runtime {
namespace {

using ir::Tensor;
using onednn::BuildConfig;
using onednn::Builder;
using onednn::PreparedGraph;
using onednn::ShapePlan;
using onednn::WeightCache;


std::string shapes_text(const std::vector<std::vector<int64_t>>& shapes) {
  std::string s;
  for (const auto& shape : shapes) s += (s.empty() ? "" : ", ") + ir::shape_to_string(shape);
  return s;
}

class OnednnPlanImpl final : public OnednnPlan {
 public:
  OnednnPlanImpl(const OnednnOptions& options, int threads, PreparedGraph prepared)
      : options_(options), threads_(threads), prepared_(std::move(prepared)), stream_(onednn::cpu_engine()) {
    for (const ir::Value* v : prepared_.graph.inputs()) declared_.push_back(v->type());
  }

  Expected<std::vector<Tensor>> run(const std::vector<Tensor>& inputs) override {
    COMPRESS_CHECK(inputs.size() == declared_.size(), StatusCode::kInvalidArgument, "the graph takes {} inputs, got {}",
                   declared_.size(), inputs.size());
    std::vector<ir::Shape> shapes;
    bool empty = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      COMPRESS_RETURN_IF_ERROR(check_input(i, inputs[i]));
      shapes.push_back(inputs[i].shape());
      empty = empty || inputs[i].numel() == 0;
    }
    if (empty) {
      // oneDNN primitives are not defined on empty tensors; the reference is.
      return run_reference(prepared_.graph, inputs);
    }
    std::vector<Tensor> dense;
    for (const Tensor& t : inputs) {
      if (t.is_sparse()) {
        COMPRESS_ASSIGN_OR_RETURN(Tensor d, t.to_dense());
        dense.push_back(std::move(d));
      } else {
        dense.push_back(t);
      }
    }
    COMPRESS_ASSIGN_OR_RETURN(ShapePlan * plan, plan_for(shapes));
    return plan->run(dense, stream_, threads_, profiling_);
  }

  Status set_profiling(bool on) override {
    profiling_ = on;
    return Status::ok();
  }

  PlanReport describe() const override {
    const OnednnPlanReport& r = report();
    PlanReport out;
    out.backend = "onednn";
    out.steps = r.steps;
    out.fallbacks = all_fallbacks_;
    out.profiled_runs = r.profiled_runs;
    out.text = r.to_string();
    out.profile_text = r.profile_to_string();
    return out;
  }

  const OnednnPlanReport& report() const override { return last_ ? last_->report : empty_report_; }

  std::vector<OnednnFallback> fallbacks() const override { return all_fallbacks_; }

  Status prepare(const std::vector<std::vector<int64_t>>& input_shapes) override {
    COMPRESS_CHECK(input_shapes.size() == declared_.size(), StatusCode::kInvalidArgument,
                   "the graph takes {} inputs, got {} shapes", declared_.size(), input_shapes.size());
    auto plan = plan_for(input_shapes);
    return plan.status();
  }

  const OnednnOptions& options() const override { return options_; }

 private:
  Status check_input(size_t i, const Tensor& t) const {
    const ir::ValueType& type = declared_[i];
    bool ok = t.defined() && t.dtype() == type.dtype && t.rank() == static_cast<int64_t>(type.shape.size());
    for (size_t d = 1; ok && d < type.shape.size(); ++d) ok = t.shape()[d] == type.shape[d];
    if (ok) return Status::ok();
    return invalid_argument("input {} '{}': expected {}{} (any batch), got {}", i, prepared_.graph.inputs()[i]->name(),
                            ir::dtype_name(type.dtype), ir::shape_to_string(type.shape),
                            t.defined() ? fmt::format("{}{}", ir::dtype_name(t.dtype()), ir::shape_to_string(t.shape()))
                                        : std::string("an undefined tensor"));
  }

  Expected<ShapePlan*> plan_for(const std::vector<ir::Shape>& shapes) {
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->first != shapes) continue;
      cache_.splice(cache_.begin(), cache_, it);
      last_ = cache_.front().second.get();
      return last_;
    }
    const auto start = std::chrono::steady_clock::now();
    ir::Graph& g = prepared_.graph;
    for (size_t i = 0; i < shapes.size(); ++i) {
      ir::ValueType type = declared_[i];
      type.shape = shapes[i];
      g.inputs()[i]->set_type(type);
    }
    COMPRESS_RETURN_IF_ERROR(
        g.infer_types().with_context(fmt::format("onednn backend: inputs of shape {}", shapes_text(shapes))));
    auto plan = std::make_unique<ShapePlan>();
    plan->input_shapes = shapes;
    BuildConfig config{options_, threads_};
    Builder builder(prepared_, config, weights_, *plan);
    // Emitters turn oneDNN's refusals into fallbacks; anything oneDNN throws
    // beyond those (creating a primitive's code, binding memory) is an error
    // of this compile, not an exception out of the Backend interface.
    try {
      COMPRESS_RETURN_IF_ERROR(builder.build().with_context("onednn backend"));
      COMPRESS_RETURN_IF_ERROR(plan->finalize().with_context("onednn backend"));
    } catch (const dnnl::error& e) {
      return make_error(StatusCode::kInternal, "onednn backend: oneDNN failed while building the plan for inputs {}: {}",
                        shapes_text(shapes), e.what());
    }
    OnednnPlanReport& r = plan->report;
    r.input_shapes = shapes;
    r.compute = options_.compute;
    r.threads = threads_;
    r.weight_bytes = weights_.bytes();
    r.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    for (const OnednnFallback& f : r.fallbacks) {
      bool known = false;
      for (const OnednnFallback& k : all_fallbacks_) known = known || (k.node == f.node && k.reason == f.reason);
      if (!known) all_fallbacks_.push_back(f);
    }
    cache_.emplace_front(shapes, std::move(plan));
    while (static_cast<int>(cache_.size()) > std::max(1, options_.max_cached_shapes)) cache_.pop_back();
    last_ = cache_.front().second.get();
    return last_;
  }

  OnednnOptions options_;
  int threads_;
  PreparedGraph prepared_;
  std::vector<ir::ValueType> declared_;
  WeightCache weights_;
  dnnl::stream stream_;
  std::list<std::pair<std::vector<ir::Shape>, std::unique_ptr<ShapePlan>>> cache_;
  ShapePlan* last_ = nullptr;
  std::vector<OnednnFallback> all_fallbacks_;
  OnednnPlanReport empty_report_;
  bool profiling_ = false;
};

class OnednnBackend final : public Backend {
 public:
  explicit OnednnBackend(const OnednnOptions& options) : options_(options) {}

  std::string_view name() const override { return "onednn"; }

  OpCoverage op_coverage(ir::OpKind kind) const override { return onednn::op_coverage(kind); }

  // The final word comes at compile time, where shapes, dtypes and layouts
  // are known; a node refused then falls back too, with its reason.
  SupportDecision supports(const ir::Node& node) const override {
    if (onednn::op_coverage(node.kind()).implemented) return {};
    return {false, onednn::unmapped_reason(node)};
  }

  Expected<std::unique_ptr<ExecutionPlan>> compile(const ir::Graph& graph) override {
    COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("onednn backend: the graph does not verify"));
    // What oneDNN refuses must be runnable by the reference kernels (the
    // shared placement, Note [Partitions]); the plan runs those nodes on its
    // own buffers, without partition copies.
    COMPRESS_RETURN_IF_ERROR(partition_graph(graph, *this).status());
    COMPRESS_CHECK(options_.threads >= 0, StatusCode::kInvalidArgument, "onednn backend: threads must be >= 0, got {}",
                   options_.threads);
    COMPRESS_RETURN_IF_ERROR(onednn_compute_available(options_.compute).with_context("onednn backend"));
    const int threads = options_.threads > 0 ? options_.threads : num_threads();
    COMPRESS_ASSIGN_OR_RETURN(PreparedGraph prepared, onednn::prepare_graph(graph, options_.fuse));
    auto plan = std::make_unique<OnednnPlanImpl>(options_, threads, std::move(prepared));
    // The declared shapes are compiled now, so compile errors surface here
    // and the first run does not pay for them.
    std::vector<std::vector<int64_t>> shapes;
    for (const ir::Value* v : graph.inputs()) shapes.push_back(v->shape());
    bool has_empty = false;
    for (const auto& s : shapes) has_empty = has_empty || ir::numel(s) == 0;
    if (!has_empty) COMPRESS_RETURN_IF_ERROR(plan->prepare(shapes));
    return std::unique_ptr<ExecutionPlan>(std::move(plan));
  }

 private:
  OnednnOptions options_;
};

}  // namespace

std::string OnednnPlanReport::to_string() const {
  std::string s =
      fmt::format("onednn plan for inputs {}: {} compute, {} threads, {} steps, {} reorders, {} fused nodes\n",
                  shapes_text(input_shapes), compute == OnednnCompute::kBF16 ? "bf16" : "f32", threads, steps.size(),
                  reorders, fused_nodes);
  s += fmt::format(
      "  activations {:.2f} MiB in one arena ({:.2f} MiB without reuse), weights {:.2f} MiB, compile {:.1f} ms\n",
      arena_bytes / 1048576.0, unshared_bytes / 1048576.0, weight_bytes / 1048576.0, compile_ms);
  return s + plan_steps_text(steps) + plan_fallbacks_text(fallbacks);
}

std::string OnednnPlanReport::profile_to_string(size_t top) const { return plan_profile_text(steps, profiled_runs, top); }

const OnednnPlan* as_onednn_plan(const ExecutionPlan& plan) { return dynamic_cast<const OnednnPlan*>(&plan); }

std::unique_ptr<Backend> make_onednn_backend(const OnednnOptions& options) {
  return std::make_unique<OnednnBackend>(options);
}

const OnednnCpuSupport& onednn_cpu_support() {
  static const OnednnCpuSupport support = [] {
    using isa = dnnl::cpu_isa;
    OnednnCpuSupport s;
    const isa effective = dnnl::get_effective_cpu_isa();
    switch (effective) {
      case isa::sse41: s.isa = "sse41"; break;
      case isa::avx: s.isa = "avx"; break;
      case isa::avx2: s.isa = "avx2"; break;
      case isa::avx2_vnni: s.isa = "avx2_vnni"; break;
      case isa::avx512_core: s.isa = "avx512_core"; break;
      case isa::avx512_core_vnni: s.isa = "avx512_core_vnni"; break;
      case isa::avx512_core_bf16: s.isa = "avx512_core_bf16"; break;
      case isa::avx512_core_amx: s.isa = "avx512_core_amx"; break;
      default: s.isa = "other"; break;
    }
    // An ISA not named here is taken to have neither (the safe side).
    const bool avx512_vnni = effective == isa::avx512_core_vnni || effective == isa::avx512_core_bf16 ||
                             effective == isa::avx512_core_amx;
    s.bf16 = avx512_vnni || effective == isa::avx512_core;
    s.int8_vnni = avx512_vnni || effective == isa::avx2_vnni;
    s.int8_weight_limit = s.int8_vnni ? 127 : 64;
    return s;
  }();
  return support;
}

Status onednn_compute_available(OnednnCompute compute) {
  const OnednnCpuSupport& cpu = onednn_cpu_support();
  if (compute == OnednnCompute::kBF16 && !cpu.bf16) {
    return unsupported(
        "bf16 compute needs a CPU with AVX-512 (oneDNN 2.6 has bf16 kernels from avx512_core up); this CPU's ISA is "
        "{}: use f32",
        cpu.isa);
  }
  return Status::ok();
}

std::string onednn_runtime_info() {
  const dnnl_version_t* v = dnnl_version();
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  const char* threading = "OpenMP";
#elif DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_TBB
  const char* threading = "TBB";
#elif DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_SEQ
  const char* threading = "sequential";
#else
  const char* threading = "threadpool";
#endif
  return fmt::format("oneDNN {}.{}.{} ({} threading, ISA {})", v->major, v->minor, v->patch, threading,
                     onednn_cpu_support().isa);
}

}  // namespace compress::runtime
