// The activation probe: run a graph on a dataset batch by batch and hand the caller chosen intermediate values.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::eval {

struct ProbeOptions {
  int64_t samples = 512;              // the first `samples` of the data (fewer when it has fewer)
  int64_t batch = 32;                 // samples per run
  std::string backend = "reference";  // a runtime::make_backend name
  std::string title = "probing";      // the progress bar's label; it also starts error messages
  bool progress = true;
};

// One batch as the probe saw it.
struct ProbeBatch {
  int64_t start = 0;  // index of the batch's first sample
  int64_t count = 0;  // samples in it
  // The requested values, in the order they were named; a graph input is
  // the batch itself. Valid during the visit only.
  std::vector<const ir::Tensor*> values;
};
using ProbeVisitor = std::function<Status(const ProbeBatch&)>;

// Runs `graph` on the data in batches and calls `visit` once per batch with
// the values named in `values` (any value of the graph: node outputs or the
// input). Only what those values depend on is computed (the probe graph's
// outputs are the named values, dead nodes removed), and memory holds one
// batch at a time. A value that does not exist, a graph with more than one
// input, empty data, or bad sizes are errors naming the value or the
// option; a backend error names the batch. `visit` returning an error stops
// the probe with it.
Status probe_values(const ir::Graph& graph, const std::vector<std::string>& values, const DataSource& data,
                    const ProbeOptions& options, const ProbeVisitor& visit);

}  // namespace compress::eval
