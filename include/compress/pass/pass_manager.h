// PassManager: runs a pipeline of passes in order, verifying the graph after each.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compress/pass/pass.h"

namespace compress::pass {

// What a pipeline does around its passes, in the spirit of MLIR's pass
// instrumentation: print the IR after chosen passes, stop early. Passes are
// named by pass name ("quant.ptq") or by 1-based stage number ("2"), which
// tells apart two stages of the same pass.
struct PassInstrumentation {
  // "" (none), "all", or a pass name or stage number.
  std::string print_ir_after;
  // Called with the pass's name, its stage number and the graph after it;
  // by default the IR text goes to stdout.
  std::function<void(const std::string& pass, size_t stage, const ir::Graph& graph)> print_ir;
  // "" (run everything), or a pass name or stage number: the pipeline ends
  // after the first stage that matches.
  std::string stop_after;
};

// Checks the print_ir_after and stop_after selectors against a pipeline's
// stage names, in order: an error names a selector that matches no stage.
Status check_instrumentation(const PassInstrumentation& instrumentation, const std::vector<std::string>& stage_names);

// One stage's outcome, in pipeline order.
struct StageResult {
  std::string pass;
  PassResult result;
  double seconds = 0;  // wall time of the pass (its run, not the verification)
};

class PassManager {
 public:
  void add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  size_t size() const { return passes_.size(); }
  void set_instrumentation(PassInstrumentation instrumentation) { instrumentation_ = std::move(instrumentation); }

  // Checks every pass's needs against the context, then runs each pass and
  // ir::verify after it. The first failure (a pass error or a graph the
  // verifier rejects) stops the pipeline with the pass named in the message.
  Expected<std::vector<StageResult>> run(ir::Graph& graph, PassContext& context);

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
  PassInstrumentation instrumentation_;
};

}  // namespace compress::pass
