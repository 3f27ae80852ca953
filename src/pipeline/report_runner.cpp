// Measures variants one after another on the same backend and threads, then writes the report files.
#include "compress/pipeline/report_runner.h"

#include <fmt/format.h>

#include <thread>

#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "compress/support/threads.h"

namespace compress::pipeline {

Expected<eval::Report> run_report(const std::vector<ReportVariantInput>& variants, const eval::DataSource* data,
                                  const ReportRunOptions& options) {
  if (variants.empty()) return invalid_argument("report: no models to measure");
  for (const ReportVariantInput& v : variants) {
    if (v.graph == nullptr) return invalid_argument("report: variant '{}' has no graph", v.name);
  }
  COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Backend> backend, runtime::make_backend(options.backend));
  eval::Report report;
  report.backend = options.backend;
  report.threads = num_threads();
  report.data = data != nullptr ? data->describe() : std::string();
  for (size_t i = 0; i < variants.size(); ++i) {
    const ReportVariantInput& v = variants[i];
    log_info("report: measuring {} of {}: '{}' ({})", i + 1, variants.size(), v.name, v.path);
    Expected<eval::VariantReport> measured =
        eval::measure_variant(v.name, v.path, *v.graph, *backend, data, options.measure);
    if (!measured.has_value()) return measured.status().with_context(fmt::format("report: variant '{}'", v.name));
    report.variants.push_back(std::move(*measured));
  }
  report.load_average = eval::current_load_average();
  report.cores = static_cast<int>(std::thread::hardware_concurrency());
  COMPRESS_RETURN_IF_ERROR(eval::write_report(report, options.out_dir));
  return report;
}

}  // namespace compress::pipeline
