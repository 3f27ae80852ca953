// `ctk report BASELINE VARIANT... --out DIR`: accuracy, latency, size and bits of models side by side.
#include <fmt/format.h>

#include <filesystem>

#include "commands.h"
#include "compress/eval/dataset.h"
#include "compress/io/files.h"
#include "compress/support/check.h"
#include "compress/support/parse.h"
#include "compress/pipeline/model_loading.h"
#include "compress/pipeline/report_runner.h"

namespace compress::cli {

const CommandDoc kReportDoc = {
    "report",
    "compare a baseline and compressed variants: accuracy, latency, size, bits",
    "ctk report BASELINE VARIANT... --out DIR [--data SPEC --mean M --std S] [--limit N] [--backend onednn|reference] "
    "[--batch-sizes 1,32] [--min-time SECONDS] [--names a,b,...]",
    "Measures every model on the same backend and thread count, one after\n"
    "another: top-1 accuracy on --data (when given), latency p50 at each batch\n"
    "size (random inputs, see ctk bench), size on disk, parameter count, bits\n"
    "per weight and weight sparsity, and the deltas against the first model\n"
    "(the baseline). Writes DIR/report.md, DIR/report.json (per variant: name,\n"
    "top1, latency_ms_b1, latency_ms_b32, size_bytes, ... — see\n"
    "docs/recipes.md) and DIR/report.html (charts), and prints the summary.\n"
    "Variant names default to the file names without extension.",
    "  ctk report fashion_cnn.cmf fashion_int8.cmf --data fashion-mnist:test --mean 0.286 --std 0.353 --out report/\n"
    "  ctk report resnet18.pt resnet18_int8.cmf --input-shape 1,3,224,224 --out r18/ --batch-sizes 1\n",
};

int run_report(const std::vector<std::string>& args) {
  CommandLine cl(kReportDoc);
  cl.options().add_options()
      ("out,o", po::value<std::string>()->value_name("DIR"), "folder for report.md/.json/.html")
      ("data,d", po::value<std::string>()->value_name("SPEC"), "evaluation dataset (see ctk eval --help)")
      ("backend,b", po::value<std::string>()->default_value("onednn")->value_name("NAME"), "backend to measure on")
      ("batch-sizes", po::value<std::string>()->default_value("1,32")->value_name("B,..."), "latency batch sizes")
      ("min-time", po::value<double>()->default_value(2.0)->value_name("SECONDS"), "timed seconds per latency at least")
      ("names", po::value<std::string>()->value_name("A,B,..."), "variant names, in order");
  add_dataset_options(cl, true);
  cl.add_positional("models", -1);
  if (!cl.parse(args)) return kExitOk;
  if (!cl.has("models")) cl.usage_error("missing BASELINE and VARIANT models");
  const auto paths = cl.vm()["models"].as<std::vector<std::string>>();
  if (paths.size() < 2) cl.usage_error("give a BASELINE and at least one VARIANT");
  if (!cl.has("out")) cl.usage_error("missing --out DIR");
  std::vector<std::string> names;
  if (cl.has("names")) {
    names = split_list(cl.vm()["names"].as<std::string>());
    if (names.size() != paths.size()) {
      cl.usage_error(fmt::format("--names gives {} names for {} models", names.size(), paths.size()));
    }
  } else {
    for (const std::string& p : paths) names.push_back(std::filesystem::path(p).stem().string());
  }
  pipeline::ReportRunOptions options;
  options.backend = cl.vm()["backend"].as<std::string>();
  options.out_dir = cl.vm()["out"].as<std::string>();
  options.measure.latency.min_time_s = checked_number(cl, "min-time", 0.0, 3600.0);
  options.measure.progress = !cl.vm()["quiet"].as<bool>();
  options.measure.batch_sizes.clear();
  for (const std::string& b : split_list(cl.vm()["batch-sizes"].as<std::string>())) {
    int64_t v = 0;
    if (!parse_int64(b, &v) || v < 1) cl.usage_error(fmt::format("bad --batch-sizes entry '{}' (use integers >= 1)", b));
    options.measure.batch_sizes.push_back(v);
  }
  const eval::DatasetOptions data_options = dataset_options(cl);
  // The report folder must be usable before anything is measured.
  const Status out_ok = io::check_output_folder(options.out_dir, "--out");
  if (!out_ok.is_ok()) return report_failure(kReportDoc, out_ok);

  std::vector<ir::Graph> graphs;
  for (const std::string& p : paths) {
    Expected<ir::Graph> g = pipeline::load_model(p, cl.model_options());
    if (!g.has_value()) return report_failure(kReportDoc, g.status());
    graphs.push_back(std::move(*g));
  }
  std::unique_ptr<eval::DataSource> data;
  if (cl.has("data")) {
    auto opened = eval::open_dataset(cl.vm()["data"].as<std::string>(), data_options);
    if (!opened.has_value()) return report_failure(kReportDoc, opened.status());
    data = std::move(*opened);
  }
  std::vector<pipeline::ReportVariantInput> variants;
  for (size_t i = 0; i < paths.size(); ++i) variants.push_back({names[i], paths[i], &graphs[i]});
  auto report = pipeline::run_report(variants, data.get(), options);
  if (!report.has_value()) return report_failure(kReportDoc, report.status());
  print_report_summary(*report, options.out_dir);
  return kExitOk;
}

}  // namespace compress::cli
