// Text rendering of ModelStats (the `ctk inspect` summary and per-layer table).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "compress/analysis/model_stats.h"

namespace compress::analysis {

struct StatsReportOptions {
  std::string source;                      // file the model came from, if any
  std::optional<uint64_t> file_size_bytes;  // size on disk, if known
  bool layer_table = true;
};

// Summary lines (name, inputs/outputs, params, size, FLOPs, op counts)
// followed by the per-layer table; ends with a newline.
std::string format_model_stats(const ModelStats& stats, const StatsReportOptions& options = {});

// "1.23 M"-style counts (SI, 3 significant digits); exact below 1000.
std::string human_count(int64_t n);
// "12.3 KiB"-style sizes (binary units); exact bytes below 1 KiB.
std::string human_bytes(uint64_t n);

}  // namespace compress::analysis
