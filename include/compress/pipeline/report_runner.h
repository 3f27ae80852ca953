// Measures model variants side by side on one backend and writes the comparison report (ctk report, ctk run, C++ callers).
#pragma once

#include <string>
#include <vector>

#include "compress/eval/report.h"
#include "compress/ir/graph.h"

namespace compress::pipeline {

struct ReportVariantInput {
  std::string name;
  std::string path;  // file whose size is reported
  const ir::Graph* graph = nullptr;
};

struct ReportRunOptions {
  std::string backend = "onednn";
  std::string out_dir;
  eval::ReportOptions measure;
};

// Measures every variant (the first is the baseline) on one backend
// instance, one after another with the same threads, and writes
// report.md/.json/.html into out_dir. `data` may be null (no accuracy
// column). Returns what was written; printing it is the caller's choice.
Expected<eval::Report> run_report(const std::vector<ReportVariantInput>& variants, const eval::DataSource* data,
                                  const ReportRunOptions& options);

}  // namespace compress::pipeline
