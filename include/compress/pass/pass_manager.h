// PassManager: runs a pipeline of passes in order, verifying the graph after each.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compress/pass/pass.h"

namespace compress::pass {

class PassManager {
 public:
  void add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  size_t size() const { return passes_.size(); }

  // Runs every pass, then ir::verify. The first failure (a pass error or a
  // graph the verifier rejects) stops the pipeline with the pass named in the
  // message. Results come back in pipeline order, one per pass.
  Expected<std::vector<std::pair<std::string, PassResult>>> run(ir::Graph& graph, PassContext& context);

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
};

}  // namespace compress::pass
