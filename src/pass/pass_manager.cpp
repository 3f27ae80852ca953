// PassManager: verify-after-each pipeline execution.
#include "compress/pass/pass_manager.h"

#include <fmt/format.h>

#include "compress/ir/verifier.h"
#include "compress/support/logging.h"

namespace compress::pass {

Expected<std::vector<std::pair<std::string, PassResult>>> PassManager::run(ir::Graph& graph, PassContext& context) {
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
