// PassManager: verify-after-each pipeline execution.
#include "compress/pass/pass_manager.h"

#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "compress/ir/printer.h"
#include "compress/ir/verifier.h"
#include "compress/support/logging.h"

namespace compress::pass {

std::string unmet_need(const PassNeeds& needs, const PassContext& context) {
  if (needs.calibration && context.calibration == nullptr) return "calibration data (data.calibration)";
  if (needs.training && context.training == nullptr) return "training data (data.training)";
  if (needs.metric && !context.metric) return "evaluation data to score candidates (data.evaluation)";
  if (needs.reference_model && context.reference_model == nullptr) return "the original model as a reference";
  return "";
}

namespace {

// True when `selector` ("all", a pass name or a stage number) names stage
// `stage` (1-based) running `pass`.
bool selects(const std::string& selector, size_t stage, const std::string& pass) {
  return selector == "all" || selector == pass || selector == std::to_string(stage);
}

}  // namespace

Status check_instrumentation(const PassInstrumentation& instrumentation, const std::vector<std::string>& stage_names) {
  for (const auto& [selector, what] : {std::pair{&instrumentation.print_ir_after, "print-ir-after"},
                                       std::pair{&instrumentation.stop_after, "stop-after"}}) {
    if (selector->empty() || (*selector == "all" && what == std::string("print-ir-after"))) continue;
    bool found = false;
    std::string names;
    for (size_t i = 0; i < stage_names.size(); ++i) {
      found = found || selects(*selector, i + 1, stage_names[i]);
      names += fmt::format("{}{} {}", names.empty() ? "" : ", ", i + 1, stage_names[i]);
    }
    if (!found) {
      return invalid_argument("{} '{}' names no stage of this pipeline (stages: {}; give a pass name or a stage number)",
                              what, *selector, names);
    }
  }
  return Status::ok();
}

Expected<std::vector<StageResult>> PassManager::run(ir::Graph& graph, PassContext& context) {
  {
    std::vector<std::string> names;
    for (const auto& p : passes_) names.push_back(p->name());
    COMPRESS_RETURN_IF_ERROR(check_instrumentation(instrumentation_, names));
  }
  // Every stage's needs are checked before the first one runs.
  for (size_t i = 0; i < passes_.size(); ++i) {
    const std::string missing = unmet_need(passes_[i]->needs(), context);
    if (!missing.empty()) {
      return invalid_argument("pass {} of {} ('{}') needs {}, which was not given", i + 1, passes_.size(),
                              passes_[i]->name(), missing);
    }
  }
  std::vector<StageResult> results;
  for (size_t i = 0; i < passes_.size(); ++i) {
    const auto& p = passes_[i];
    const auto start = std::chrono::steady_clock::now();
    Expected<PassResult> result = p->run(graph, context);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!result.has_value()) return result.status().with_context(fmt::format("pass '{}'", p->name()));
    // A pass that leaves a broken graph is a bug in the pass; say which.
    Status verified = ir::verify(graph);
    if (!verified.is_ok()) return verified.with_context(fmt::format("graph after pass '{}' does not verify", p->name()));
    log_debug("pass {}: {} in {:.3f} s", p->name(), result->changed ? "changed the graph" : "no change", seconds);
    results.push_back({p->name(), std::move(*result), seconds});
    const std::string& print = instrumentation_.print_ir_after;
    if (!print.empty() && selects(print, i + 1, p->name())) {
      if (instrumentation_.print_ir) {
        instrumentation_.print_ir(p->name(), i + 1, graph);
      } else {
        std::cout << fmt::format("// ----- IR after stage {} ({}) -----\n{}\n", i + 1, p->name(), ir::print_graph(graph));
      }
    }
    if (!instrumentation_.stop_after.empty() && selects(instrumentation_.stop_after, i + 1, p->name())) break;
  }
  return results;
}

}  // namespace compress::pass
