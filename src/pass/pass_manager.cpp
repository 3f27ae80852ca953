// PassManager: verify-after-each pipeline execution.
#include "compress/pass/pass_manager.h"

#include <fmt/format.h>

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

Expected<std::vector<std::pair<std::string, PassResult>>> PassManager::run(ir::Graph& graph, PassContext& context) {
  // Every stage's needs are checked before the first one runs.
  for (size_t i = 0; i < passes_.size(); ++i) {
    const std::string missing = unmet_need(passes_[i]->needs(), context);
    if (!missing.empty()) {
      return invalid_argument("pass {} of {} ('{}') needs {}, which was not given", i + 1, passes_.size(),
                              passes_[i]->name(), missing);
    }
  }
  std::vector<std::pair<std::string, PassResult>> results;
  for (const auto& p : passes_) {
    Expected<PassResult> result = p->run(graph, context);
    if (!result.has_value()) return result.status().with_context(fmt::format("pass '{}'", p->name()));
    // A pass that leaves a broken graph is a bug in the pass; say which.
    Status verified = ir::verify(graph);
    if (!verified.is_ok()) return verified.with_context(fmt::format("graph after pass '{}' does not verify", p->name()));
    log_debug("pass {}: {}", p->name(), result->changed ? "changed the graph" : "no change");
    results.emplace_back(p->name(), std::move(*result));
  }
  return results;
}

}  // namespace compress::pass
