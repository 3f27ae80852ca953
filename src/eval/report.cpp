// Comparison reports: measure variants, then render JSON, Markdown and a self-contained HTML page.
#include "compress/eval/report.h"

#include "compress/support/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "compress/analysis/weighted_layers.h"
#include "compress/eval/metrics.h"
#include "compress/io/atomic_file.h"
#include "compress/support/check.h"
#include "compress/support/logging.h"

namespace compress::eval {
namespace {

namespace fs = std::filesystem;

const VariantReport& baseline(const Report& report) { return report.variants.front(); }

std::optional<double> speedup(const VariantReport& base, const VariantReport& v, int64_t batch) {
  auto b = base.latency.find(batch), x = v.latency.find(batch);
  if (b == base.latency.end() || x == v.latency.end() || x->second.p50_ms <= 0) return std::nullopt;
  return b->second.p50_ms / x->second.p50_ms;
}

std::vector<int64_t> batch_sizes(const Report& report) {
  std::set<int64_t> all;
  for (const VariantReport& v : report.variants) {
    for (const auto& [b, lat] : v.latency) all.insert(b);
  }
  return {all.begin(), all.end()};
}

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

std::string fmt_opt(const std::optional<double>& v, const char* spec) {
  return v ? fmt::format(fmt::runtime(spec), *v) : std::string("n/a");
}

std::string human_bytes(int64_t bytes) {
  if (bytes >= (1 << 20)) return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= (1 << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / (1 << 10));
  return fmt::format("{} B", bytes);
}

// Names come from files (Note [Printing outside text]): invalid UTF-8 becomes U+FFFD.
std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : valid_utf8(s)) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

double current_load_average() {
  std::ifstream in("/proc/loadavg");
  double load = 0;
  return in >> load ? load : 0.0;
}

double others_cpu_share(const Report& report) {
  double share = -1;
  for (const VariantReport& v : report.variants) {
    for (const auto& [batch, latency] : v.latency) share = std::max(share, latency.others_cpu_share);
  }
  return share;
}

namespace {
// A line for busy machines; "" when the measurement had the cores to itself.
// Note [Measuring others' load] (support/cpu_load.h): what other processes used
// while the runs were timed, where known; the load average otherwise.
std::string load_warning(const Report& report) {
  if (const double share = others_cpu_share(report); share >= 0) {
    if (share <= kUnreliableOthersShare) return "";
    return fmt::format("Warning: other processes used {:.0f}% of the {} cores while the latencies were timed, so "
                       "they are unreliable (rerun on a quiet machine).",
                       100.0 * share, report.cores);
  }
  if (report.cores <= 0 || report.load_average <= report.cores) return "";
  return fmt::format("Warning: the load average was {:.1f} on {} cores while measuring; other processes competed for "
                     "the cores, so the latencies are unreliable (rerun on a quiet machine).",
                     report.load_average, report.cores);
}
// Note [Saying when compression did not pay]
// Users of every toolkit find out after deploying that the "compressed"
// model is not faster. A report says it: a variant whose median is not at
// least kClearlyFaster times below the baseline's at some measured batch is
// named under the table with its speedups (a sparse model whose kernels do
// not beat the dense ones, an int8 model of layers too small for int8 to
// pay). 1.05: run-to-run noise of the same plan on a quiet machine is a few
// percent.
constexpr double kClearlyFaster = 1.05;

// "b1 0.98x, b32 1.01x" for a variant that is not clearly faster at some
// batch; "" when it is at every batch, or was not timed against the baseline.
std::string not_clearly_faster(const Report& report, const VariantReport& v) {
  std::string speedups;
  bool slow = false;
  for (int64_t b : batch_sizes(report)) {
    const std::optional<double> s = speedup(baseline(report), v, b);
    if (!s) continue;
    slow = slow || *s < kClearlyFaster;
    speedups += fmt::format("{}b{} {:.2f}x", speedups.empty() ? "" : ", ", b, *s);
  }
  return slow ? speedups : std::string();
}

// The variants not_clearly_faster names, as one sentence ("" when none).
std::string not_faster_note(const Report& report) {
  std::string list;
  for (size_t i = 1; i < report.variants.size(); ++i) {
    const std::string speedups = not_clearly_faster(report, report.variants[i]);
    if (!speedups.empty()) list += fmt::format("{}{} ({})", list.empty() ? "" : "; ", report.variants[i].name, speedups);
  }
  if (list.empty()) return "";
  return fmt::format("Not clearly faster than {} (median speedup below {:.2f}x at some batch): {}.",
                     baseline(report).name, kClearlyFaster, list);
}

}  // namespace

Expected<VariantReport> measure_variant(const std::string& name, const std::string& path, const ir::Graph& graph,
                                        runtime::Backend& backend, const DataSource* data,
                                        const ReportOptions& options) {
  VariantReport v;
  v.name = name;
  v.path = path;
  const analysis::ModelStats stats = analysis::compute_model_stats(graph);
  v.params = stats.num_params;
  v.flops = stats.flops;
  v.layers = stats.layers;
  double bits = 0, elements = 0, zeros = 0;
  for (const analysis::LayerStats& layer : stats.layers) {
    if (!analysis::is_weighted_op(layer.op) || layer.weight_name.empty()) continue;
    const ir::Value* w = graph.find_value(layer.weight_name);
    if (w == nullptr || !w->is_constant()) continue;
    const double n = static_cast<double>(w->constant().numel());
    bits += layer.bits_per_weight * n;
    zeros += layer.weight_sparsity * n;
    elements += n;
  }
  v.bits_per_weight = elements > 0 ? bits / elements : 0.0;
  v.weight_sparsity = elements > 0 ? zeros / elements : 0.0;
  if (!path.empty()) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    COMPRESS_CHECK(!ec, StatusCode::kIoError, "report: cannot read the size of '{}': {}", path, ec.message());
    v.size_bytes = static_cast<int64_t>(size);
  }

  const auto t0 = std::chrono::steady_clock::now();
  COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<runtime::ExecutionPlan> plan, backend.compile(graph));
  const double compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (data != nullptr) {
    log_info("report: evaluating '{}' on {}", name, data->describe());
    COMPRESS_ASSIGN_OR_RETURN(AccuracyResult acc, evaluate_top1(*plan, *data, options.eval_batch, options.progress));
    v.top1 = acc.top1();
    v.eval_samples = acc.samples;
  }
  for (int64_t batch : options.batch_sizes) {
    COMPRESS_CHECK(batch >= 1, StatusCode::kInvalidArgument, "report: batch sizes must be >= 1, got {}", batch);
    log_info("report: timing '{}' at batch {}", name, batch);
    COMPRESS_ASSIGN_OR_RETURN(std::vector<ir::Tensor> inputs, random_inputs(graph, batch));
    COMPRESS_ASSIGN_OR_RETURN(LatencyResult lat, time_plan(*plan, inputs, options.latency));
    lat.compile_ms = compile_ms;
    v.latency[batch] = lat;
  }
  return v;
}

std::string report_json(const Report& report) {
  COMPRESS_INTERNAL_ASSERT(!report.variants.empty(), "a report needs at least the baseline");
  nlohmann::json j;
  j["backend"] = report.backend;
  j["threads"] = report.threads;
  j["data"] = report.data.empty() ? nlohmann::json() : nlohmann::json(report.data);
  j["baseline"] = baseline(report).name;
  j["load_average"] = report.load_average;
  const double share = others_cpu_share(report);
  j["others_cpu_share"] = share >= 0 ? nlohmann::json(share) : nlohmann::json();
  j["cores"] = report.cores;
  const std::vector<int64_t> batches = batch_sizes(report);
  nlohmann::json variants = nlohmann::json::array();
  const VariantReport& base = baseline(report);
  for (const VariantReport& v : report.variants) {
    nlohmann::json o;
    o["name"] = v.name;
    o["path"] = v.path;
    o["top1"] = optional_json(v.top1);
    o["eval_samples"] = v.eval_samples;
    for (int64_t b : batches) {
      auto it = v.latency.find(b);
      o[fmt::format("latency_ms_b{}", b)] = it == v.latency.end() ? nlohmann::json() : nlohmann::json(it->second.p50_ms);
      o[fmt::format("speedup_b{}", b)] = optional_json(speedup(base, v, b));
    }
    // Note [Saying when compression did not pay]; null for the baseline and untimed variants.
    const bool compared = &v != &base && std::any_of(batches.begin(), batches.end(), [&](int64_t b) {
      return speedup(base, v, b).has_value();
    });
    o["clearly_faster"] = compared ? nlohmann::json(not_clearly_faster(report, v).empty()) : nlohmann::json();
    o["compile_ms"] = v.latency.empty() ? nlohmann::json() : nlohmann::json(v.latency.begin()->second.compile_ms);
    o["size_bytes"] = v.size_bytes;
    o["params"] = v.params;
    o["bits_per_weight"] = v.bits_per_weight;
    o["weight_sparsity"] = v.weight_sparsity;
    o["flops"] = v.flops;
    o["top1_delta"] = v.top1 && base.top1 ? nlohmann::json(*v.top1 - *base.top1) : nlohmann::json();
    o["size_ratio"] = base.size_bytes > 0 && v.size_bytes > 0
                          ? nlohmann::json(static_cast<double>(v.size_bytes) / static_cast<double>(base.size_bytes))
                          : nlohmann::json();
    nlohmann::json layers = nlohmann::json::array();
    for (const analysis::LayerStats& l : v.layers) {
      if (!analysis::is_weighted_op(l.op)) continue;
      layers.push_back({{"name", l.name}, {"op", l.op}, {"sparsity", l.weight_sparsity}, {"bits", l.bits_per_weight},
                        {"layout", l.weight_layout}, {"params", l.params}, {"flops", l.flops}});
    }
    o["layers"] = layers;
    variants.push_back(o);
  }
  j["variants"] = variants;
  // Names may hold bytes that are not UTF-8: replaced, never a throw.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string report_markdown(const Report& report, bool with_layers) {
  COMPRESS_INTERNAL_ASSERT(!report.variants.empty(), "a report needs at least the baseline");
  const VariantReport& base = baseline(report);
  const std::vector<int64_t> batches = batch_sizes(report);
  std::string md = "# Compression report\n\n";
  md += fmt::format("Backend `{}`, {} threads; accuracy on {}. Baseline: `{}`. Latency is the median (p50) of timed "
                    "runs on random inputs.\n\n",
                    report.backend, report.threads, report.data.empty() ? "(no evaluation data)" : report.data,
                    base.name);
  if (const std::string warning = load_warning(report); !warning.empty()) md += "**" + warning + "**\n\n";
  md += "| variant | top-1 % | Δ top-1 |";
  for (int64_t b : batches) md += fmt::format(" p50 ms b{} | speedup b{} |", b, b);
  md += " size | size ratio | params | bits/weight | sparsity |\n|---|---:|---:|";
  for (size_t i = 0; i < batches.size(); ++i) md += "---:|---:|";
  md += "---:|---:|---:|---:|---:|\n";
  for (const VariantReport& v : report.variants) {
    std::optional<double> delta;
    if (v.top1 && base.top1) delta = *v.top1 - *base.top1;
    md += fmt::format("| {} | {} | {} |", v.name, fmt_opt(v.top1, "{:.2f}"), fmt_opt(delta, "{:+.2f}"));
    for (int64_t b : batches) {
      auto it = v.latency.find(b);
      md += fmt::format(" {} | {} |", it == v.latency.end() ? "n/a" : fmt::format("{:.3f}", it->second.p50_ms),
                        fmt_opt(speedup(base, v, b), "{:.2f}x"));
    }
    const std::optional<double> ratio =
        base.size_bytes > 0 && v.size_bytes > 0
            ? std::optional<double>(static_cast<double>(v.size_bytes) / static_cast<double>(base.size_bytes))
            : std::nullopt;
    md += fmt::format(" {} | {} | {} | {:.2f} | {:.1f}% |\n", v.size_bytes > 0 ? human_bytes(v.size_bytes) : "n/a",
                      fmt_opt(ratio, "{:.3f}"), v.params, v.bits_per_weight, 100.0 * v.weight_sparsity);
  }
  if (const std::string note = not_faster_note(report); !note.empty()) md += "\n" + note + "\n";
  for (const VariantReport& v : report.variants) {
    if (!with_layers) break;
    md += fmt::format("\n## Layers of `{}`\n\n| layer | op | layout | sparsity | bits | params | MFLOPs |\n"
                      "|---|---|---|---:|---:|---:|---:|\n",
                      v.name);
    for (const analysis::LayerStats& l : v.layers) {
      if (!analysis::is_weighted_op(l.op)) continue;
      md += fmt::format("| {} | {} | {} | {:.1f}% | {:.2f} | {} | {:.2f} |\n", l.name, l.op,
                        l.weight_layout.empty() ? "dense" : l.weight_layout, 100.0 * l.weight_sparsity,
                        l.bits_per_weight, l.params, static_cast<double>(l.flops) / 1e6);
    }
  }
  return valid_utf8(md);  // Markdown viewers expect UTF-8; names may not be
}

std::string report_html(const Report& report) {
  COMPRESS_INTERNAL_ASSERT(!report.variants.empty(), "a report needs at least the baseline");
  const std::vector<int64_t> batches = batch_sizes(report);
  const int64_t first_batch = batches.empty() ? 0 : batches.front();
  static const char* kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1"};
  auto color = [](size_t i) { return kColors[i % 7]; };
  std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>compress report</title>\n"
      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
      "padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}svg{margin:1em 0}</style>"
      "</head><body>\n<h1>Compression report</h1>\n";
  html += fmt::format("<p>Backend <b>{}</b>, {} threads; accuracy on {}.</p>\n", html_escape(report.backend),
                      report.threads, html_escape(report.data.empty() ? "(no evaluation data)" : report.data));
  if (const std::string warning = load_warning(report); !warning.empty()) {
    html += "<p><b>" + html_escape(warning) + "</b></p>\n";
  }
  // The summary table is the Markdown one's content.
  html += "<table><tr><th>variant</th><th>top-1 %</th>";
  for (int64_t b : batches) html += fmt::format("<th>p50 ms b{}</th>", b);
  html += "<th>size</th><th>bits/weight</th><th>sparsity</th></tr>\n";
  for (const VariantReport& v : report.variants) {
    html += fmt::format("<tr><td>{}</td><td>{}</td>", html_escape(v.name), fmt_opt(v.top1, "{:.2f}"));
    for (int64_t b : batches) {
      auto it = v.latency.find(b);
      html += fmt::format("<td>{}</td>", it == v.latency.end() ? "n/a" : fmt::format("{:.3f}", it->second.p50_ms));
    }
    html += fmt::format("<td>{}</td><td>{:.2f}</td><td>{:.1f}%</td></tr>\n", human_bytes(v.size_bytes),
                        v.bits_per_weight, 100.0 * v.weight_sparsity);
  }
  html += "</table>\n";
  if (const std::string note = not_faster_note(report); !note.empty()) html += "<p>" + html_escape(note) + "</p>\n";

  // Accuracy vs latency scatter (first batch size).
  const double w = 520, h = 300, pad = 50;
  double max_lat = 0, min_acc = 100, max_acc = 0;
  bool any_acc = false;
  for (const VariantReport& v : report.variants) {
    auto it = v.latency.find(first_batch);
    if (it != v.latency.end()) max_lat = std::max(max_lat, it->second.p50_ms);
    if (v.top1) {
      any_acc = true;
      min_acc = std::min(min_acc, *v.top1);
      max_acc = std::max(max_acc, *v.top1);
    }
  }
  if (any_acc && max_lat > 0) {
    const double lo = std::floor(min_acc - 1.0), hi = std::ceil(max_acc + 1.0);
    html += fmt::format("<h2>Accuracy vs latency (batch {})</h2>\n<svg width=\"{}\" height=\"{}\">", first_batch, w, h);
    html += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>"
                        "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"black\"/>",
                        pad, h - pad, w - 10, 10);
    html += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\">p50 ms (0 .. {:.2f})</text>", w / 2 - 40, h - 15, max_lat);
    html += fmt::format("<text x=\"5\" y=\"20\" font-size=\"12\">top-1 % ({:.0f} .. {:.0f})</text>", lo, hi);
    for (size_t i = 0; i < report.variants.size(); ++i) {
      const VariantReport& v = report.variants[i];
      auto it = v.latency.find(first_batch);
      if (!v.top1 || it == v.latency.end()) continue;
      const double x = pad + (w - pad - 20) * it->second.p50_ms / max_lat;
      const double y = (h - pad) - (h - pad - 20) * (*v.top1 - lo) / (hi - lo);
      html += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"6\" fill=\"{}\"/><text x=\"{:.1f}\" y=\"{:.1f}\" "
                          "font-size=\"12\">{}</text>",
                          x, y, color(i), x + 8, y - 8, html_escape(v.name));
    }
    html += "</svg>\n";
  }
  // Size bars.
  int64_t max_size = 0;
  for (const VariantReport& v : report.variants) max_size = std::max(max_size, v.size_bytes);
  if (max_size > 0) {
    const double bar_h = 24;
    html += fmt::format("<h2>Size on disk</h2>\n<svg width=\"{}\" height=\"{}\">", w,
                        bar_h * static_cast<double>(report.variants.size()) + 10);
    for (size_t i = 0; i < report.variants.size(); ++i) {
      const VariantReport& v = report.variants[i];
      const double len = (w - 250) * static_cast<double>(v.size_bytes) / static_cast<double>(max_size);
      const double y = 5 + bar_h * static_cast<double>(i);
      html += fmt::format("<text x=\"0\" y=\"{:.0f}\" font-size=\"12\">{}</text><rect x=\"120\" y=\"{:.0f}\" "
                          "width=\"{:.1f}\" height=\"{:.0f}\" fill=\"{}\"/><text x=\"{:.1f}\" y=\"{:.0f}\" "
                          "font-size=\"12\">{}</text>",
                          y + 15, html_escape(v.name), y, len, bar_h - 6, color(i), 125 + len, y + 15,
                          human_bytes(v.size_bytes));
    }
    html += "</svg>\n";
  }
  // Per-layer sparsity and bits, one row of bars per variant.
  for (size_t i = 0; i < report.variants.size(); ++i) {
    const VariantReport& v = report.variants[i];
    std::vector<const analysis::LayerStats*> layers;
    for (const analysis::LayerStats& l : v.layers) {
      if (analysis::is_weighted_op(l.op)) layers.push_back(&l);
    }
    if (layers.empty()) continue;
    const double bw = std::max(6.0, std::min(40.0, 900.0 / static_cast<double>(layers.size())));
    const double chart_w = bw * static_cast<double>(layers.size()) + 20, chart_h = 120;
    html += fmt::format("<h2>Layers of {}: sparsity (bars, 0-100%) and bits per weight (dots, 0-32)</h2>\n"
                        "<svg width=\"{:.0f}\" height=\"{:.0f}\">",
                        html_escape(v.name), chart_w, chart_h + 10);
    for (size_t k = 0; k < layers.size(); ++k) {
      const analysis::LayerStats& l = *layers[k];
      const double x = 10 + bw * static_cast<double>(k);
      const double sh = chart_h * l.weight_sparsity;
      const double by = chart_h - chart_h * std::min(32.0, l.bits_per_weight) / 32.0;
      html += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{} "
                          "sparsity {:.1f}%</title></rect><circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"black\">"
                          "<title>{} {:.2f} bits</title></circle>",
                          x, chart_h - sh, bw - 2, sh, color(i), html_escape(l.name), 100.0 * l.weight_sparsity,
                          x + bw / 2 - 1, by, html_escape(l.name), l.bits_per_weight);
    }
    html += fmt::format("<line x1=\"10\" y1=\"{0:.0f}\" x2=\"{1:.0f}\" y2=\"{0:.0f}\" stroke=\"black\"/></svg>\n",
                        chart_h, chart_w);
  }
  html += "</body></html>\n";
  return html;
}

Status write_report(const Report& report, const std::string& dir) {
  COMPRESS_CHECK(!report.variants.empty(), StatusCode::kInvalidArgument, "report: no variants to write");
  std::error_code ec;
  fs::create_directories(dir, ec);
  COMPRESS_CHECK(!ec, StatusCode::kIoError, "report: cannot create the folder '{}': {}", dir, ec.message());
  // All three are rendered before any is written, so a rendering bug cannot
  // leave a mix of new and old files.
  const std::string json = report_json(report), md = report_markdown(report), html = report_html(report);
  COMPRESS_RETURN_IF_ERROR(io::write_file_atomically((fs::path(dir) / "report.json").string(), json));
  COMPRESS_RETURN_IF_ERROR(io::write_file_atomically((fs::path(dir) / "report.md").string(), md));
  COMPRESS_RETURN_IF_ERROR(io::write_file_atomically((fs::path(dir) / "report.html").string(), html));
  return Status::ok();
}

}  // namespace compress::eval
