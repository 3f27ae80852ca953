// Calibration: run the f32 graph over samples and observe the range of chosen values.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/ir/graph.h"
#include "compress/quant/observer.h"

namespace compress::quant {

struct CalibrationOptions {
  std::string observer = "minmax";  // see make_observer()
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

}  // namespace compress::quant
