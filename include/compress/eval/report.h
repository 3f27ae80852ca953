// Comparison reports: accuracy, latency, size and bits of model variants measured the same way.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compress/analysis/model_stats.h"
#include "compress/eval/dataset.h"
#include "compress/eval/latency.h"
#include "compress/runtime/backend.h"

namespace compress::eval {

struct ReportOptions {
  std::vector<int64_t> batch_sizes = {1, 32};  // latency p50 at each
  LatencyOptions latency;                      // its batch is ignored
  int64_t eval_batch = 256;
  bool progress = true;
};

// One measured model. Latencies are p50 in milliseconds by batch size.
struct VariantReport {
  std::string name;
  std::string path;  // the file measured for size_bytes ("" when never saved)
  std::optional<double> top1;  // percent; unset without evaluation data
  int64_t eval_samples = 0;
  std::map<int64_t, LatencyResult> latency;
  int64_t size_bytes = 0;
  int64_t params = 0;            // logical elements of all constants
  double bits_per_weight = 0;    // storage bits per logical weight element (conv/linear/matmul weights)
  double weight_sparsity = 0;    // fraction of zero weight elements
  int64_t flops = 0;             // one run at the graph's declared shapes
  std::vector<analysis::LayerStats> layers;
};

// Everything measured for one `ctk report` / recipe report. variants[0] is
// the baseline the deltas are computed against.
struct Report {
  std::string backend;
  int threads = 0;
  std::string data;  // description of the evaluation data, "" when none
  // The machine's 1-minute load average when the measurements ended, and its
  // online cores: latency on a machine busier than its cores is unreliable,
  // and the report says so instead of presenting such figures as facts.
  double load_average = 0;
  int cores = 0;
  std::vector<VariantReport> variants;
};

// The 1-minute load average (/proc/loadavg), or 0 when unknown.
double current_load_average();
// The largest share of the cores other processes took while any variant's
// latency was timed (LatencyResult::others_cpu_share), or -1 when unknown.
double others_cpu_share(const Report& report);

// Measures one model on `backend`: top-1 over `data` (when given), latency at
// each batch size, and size/params/bits from the graph and the file at
// `path` (when not empty). Progress goes to the log.
Expected<VariantReport> measure_variant(const std::string& name, const std::string& path, const ir::Graph& graph,
                                        runtime::Backend& backend, const DataSource* data,
                                        const ReportOptions& options = {});

// Note [Report files]
// report.json: {backend, threads, data, baseline, variants: [{name, path,
// top1, eval_samples, latency_ms_b<B> for every batch size (p50), size_bytes,
// params, bits_per_weight, weight_sparsity, flops, and against the baseline:
// top1_delta, speedup_b<B>, size_ratio; layers: [{name, op, sparsity, bits,
// layout, params, flops}]}]}. Keys whose value was not measured are null.
// report.md shows the same as tables; report.html is one self-contained page
// (inline SVG charts: accuracy vs latency, size, per-layer sparsity and bits).
std::string report_json(const Report& report);
// with_layers = false: the summary table only (what the CLI prints).
std::string report_markdown(const Report& report, bool with_layers = true);
std::string report_html(const Report& report);

// Writes report.md, report.json and report.html into `dir` (created if
// missing), each atomically: a failure leaves no partial file.
Status write_report(const Report& report, const std::string& dir);

}  // namespace compress::eval
