// `ctk inspect MODEL [--ir] [--json]`: what a model contains and what it costs.
#include <filesystem>
#include <iostream>
#include <system_error>

#include "commands.h"
#include "compress/analysis/model_stats.h"
#include "compress/analysis/stats_json.h"
#include "compress/analysis/stats_report.h"
#include "compress/ir/printer.h"
#include "compress/pipeline/model_loading.h"

namespace compress::cli {

const CommandDoc kInspectDoc = {
    "inspect",
    "show a model's ops, parameters, size, FLOPs and per-layer table",
    "ctk inspect MODEL [--ir] [--json]",
    "Loads MODEL (a .cmf file) and prints its inputs and outputs, parameter count\n"
    "by dtype, size on disk, estimated FLOPs and MACs, op counts, and a table with\n"
    "one row per node: name, op, output shape, weight dtype, storage layout,\n"
    "weight sparsity (fraction of zeros) and bits per weight (effective bits for\n"
    "sparse storage). FLOPs follow the conventions in\n"
    "include/compress/analysis/model_stats.h (a multiply-accumulate is 2 FLOPs).",
    "  ctk inspect resnet18.cmf\n"
    "  ctk inspect resnet18.cmf --ir          # the graph in text form\n"
    "  ctk inspect resnet18.cmf --json | jq .num_params\n",
};

int run_inspect(const std::vector<std::string>& args) {
  CommandLine cl(kInspectDoc);
  cl.options().add_options()
      ("ir", po::bool_switch(), "print the graph in IR text form instead of the table")
      ("json", po::bool_switch(), "print one JSON object on stdout (with --ir: an \"ir\" key)");
  cl.add_positional("model");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  const bool want_ir = cl.vm()["ir"].as<bool>();
  const bool want_json = cl.vm()["json"].as<bool>();

  Expected<ir::Graph> graph = pipeline::load_model(path, cl.model_options());
  if (!graph.has_value()) return report_failure(kInspectDoc, graph.status());

  std::error_code ec;
  const uintmax_t file_size = std::filesystem::file_size(path, ec);
  const analysis::ModelStats stats = analysis::compute_model_stats(*graph);

  if (want_json) {
    nlohmann::json out = analysis::model_stats_to_json(stats);
    out["file"] = path;
    out["file_size_bytes"] = ec ? nlohmann::json(nullptr) : nlohmann::json(file_size);
    if (want_ir) out["ir"] = ir::print_graph(*graph);
    std::cout << json_text(out, 2) << "\n";
    return kExitOk;
  }
  if (want_ir) {
    std::cout << ir::print_graph(*graph);
    return kExitOk;
  }
  analysis::StatsReportOptions options;
  options.source = path;
  if (!ec) options.file_size_bytes = file_size;
  std::cout << analysis::format_model_stats(stats, options);
  return kExitOk;
}

}  // namespace compress::cli
