// Calibration: run the f32 graph over samples and observe the range of chosen values.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/ir/graph.h"
#include "compress/quant/observer.h"

namespace compress::quant {

struct CalibrationOptions {
  std::string observer = "minmax";  // see make_observer()
  ObserverOptions observer_options;
  int64_t samples = 512;            // the first N samples of the source (all if fewer)
  int64_t batch = 64;
  std::string backend = "reference";  // runs the f32 graph; "onednn" is faster
  bool progress = true;
};

struct CalibrationResult {
  std::map<std::string, Range> ranges;     // by value name
  std::map<std::string, int64_t> skipped;  // non-finite values skipped, by value name
  int64_t samples = 0;
};

// Observes `values` (names of f32 values of `graph`) over the first samples
// of `data`. The graph itself is not changed: a clone gets the values as
// extra outputs, so one run per batch yields all of them.
Expected<CalibrationResult> calibrate(const ir::Graph& graph, const std::vector<std::string>& values,
                                      const eval::DataSource& data, const CalibrationOptions& options);

// The batch loop under calibrate(), for passes that need their own
// statistics (bias correction, SmoothQuant): runs a clone of `graph` with
// `values` as extra outputs over the first options.samples samples of `data`
// (options.batch at a time, on options.backend, with a progress bar titled
// `title`) and calls `visit` with the values of each batch, in the order of
// `values`. `visit` returning an error stops the loop with it.
using BatchVisitor = std::function<Status(const std::vector<const ir::Tensor*>& values)>;
Status for_each_batch(const ir::Graph& graph, const std::vector<std::string>& values, const eval::DataSource& data,
                      const CalibrationOptions& options, const std::string& title, const BatchVisitor& visit);

}  // namespace compress::quant
