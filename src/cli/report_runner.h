// Measures model variants and writes the comparison report (shared by `ctk report` and `ctk run`).
#pragma once

#include <string>
#include <vector>

#include "compress/eval/report.h"
#include "compress/ir/graph.h"

namespace compress::cli {

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

// Measures every variant (the first is the baseline) on one backend instance,
// writes report.md/.json/.html into out_dir and prints the Markdown summary
// table to stdout. `data` may be null (no accuracy column).
Expected<eval::Report> run_report(const std::vector<ReportVariantInput>& variants, const eval::DataSource* data,
                                  const ReportRunOptions& options);

}  // namespace compress::cli
