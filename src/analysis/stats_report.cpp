// Text rendering of ModelStats shared by `ctk inspect` and the demo.
#include "compress/analysis/stats_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace compress::analysis {
namespace {

std::string signature_list(const std::vector<ValueSignature>& values) {
  std::string out;
  for (const ValueSignature& v : values) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{}: {}{}", v.name, ir::dtype_name(v.dtype), ir::shape_to_string(v.shape));
  }
  return out.empty() ? "(none)" : out;
}

// 1234567 -> "1,234,567": exact counts stay readable.
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// Left-aligned columns sized to their widest cell.
std::string render_table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right_align) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const bool right = c < right_align.size() && right_align[c];
      const std::string pad(width[c] - row[c].size(), ' ');
      line += right ? pad + row[c] : row[c] + (c + 1 < row.size() ? pad : "");
      if (c + 1 < row.size()) line += "  ";
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string human_count(int64_t n) {
  if (n < 1000 && n > -1000) return std::to_string(n);
  static constexpr std::array<const char*, 6> kUnits = {"K", "M", "G", "T", "P", "E"};
  double v = static_cast<double>(n);
  size_t unit = 0;
  v /= 1000.0;
  while (std::fabs(v) >= 999.5 && unit + 1 < kUnits.size()) {
    v /= 1000.0;
    ++unit;
  }
  return fmt::format("{:.3g} {}", v, kUnits[unit]);
}

std::string human_bytes(uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  static constexpr std::array<const char*, 6> kUnits = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(n) / 1024.0;
  size_t unit = 0;
  while (v >= 1023.95 && unit + 1 < kUnits.size()) {
    v /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", v, kUnits[unit]);
}

std::string format_model_stats(const ModelStats& stats, const StatsReportOptions& options) {
  std::vector<std::vector<std::string>> summary;
  std::string name = stats.name.empty() ? "(unnamed)" : stats.name;
  if (!options.source.empty()) name += fmt::format("  ({})", options.source);
  summary.push_back({"model", name});
  summary.push_back({"inputs", signature_list(stats.inputs)});
  summary.push_back({"outputs", signature_list(stats.outputs)});

  std::string by_dtype;
  for (const auto& [dtype, count] : stats.params_by_dtype) {
    by_dtype += fmt::format("{}{} {}", by_dtype.empty() ? "" : ", ", dtype, grouped(count));
  }
  summary.push_back({"params", fmt::format("{} ({}){}", grouped(stats.num_params), human_count(stats.num_params),
                                           by_dtype.empty() ? "" : "  [" + by_dtype + "]")});
  std::string size = fmt::format("weights {}", human_bytes(static_cast<uint64_t>(stats.weight_bytes)));
  if (options.file_size_bytes) {
    size = fmt::format("{} on disk ({} bytes), {}", human_bytes(*options.file_size_bytes),
                       grouped(static_cast<int64_t>(*options.file_size_bytes)), size);
  }
  summary.push_back({"size", size});
  std::string flops =
      fmt::format("{} ({}), MACs {} ({})", grouped(stats.flops), human_count(stats.flops), grouped(stats.macs),
                  human_count(stats.macs));
  if (!stats.uncounted_ops.empty()) {
    std::string ops;
    for (const auto& op : stats.uncounted_ops) ops += (ops.empty() ? "" : ", ") + op;
    flops += fmt::format("  (not counted: {})", ops);
  }
  summary.push_back({"FLOPs", flops});

  // Most frequent ops first, then by name, so the line reads like a profile.
  std::vector<std::pair<std::string, int64_t>> ops(stats.op_counts.begin(), stats.op_counts.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string op_line = std::to_string(stats.num_nodes);
  for (size_t i = 0; i < ops.size(); ++i) {
    op_line += fmt::format("{}{} x{}", i == 0 ? ": " : ", ", ops[i].first, ops[i].second);
  }
  summary.push_back({"nodes", op_line});

  std::string out = render_table(summary, {});
  if (!options.layer_table || stats.layers.empty()) return out;

  std::vector<std::vector<std::string>> rows;
  rows.push_back({"name", "op", "shape", "dtype", "layout", "sparsity", "bits", "params", "FLOPs"});
  for (const LayerStats& l : stats.layers) {
    const bool has_weight = l.weight_dtype.has_value();
    std::string dtype = "-";
    if (has_weight) dtype = std::string(ir::dtype_name(*l.weight_dtype)) + (l.weight_quantized ? " (q)" : "");
    rows.push_back({
        l.name,
        l.op,
        ir::shape_to_string(l.output_shape),
        dtype,
        has_weight ? l.weight_layout : "-",
        has_weight ? fmt::format("{:.1f}%", l.weight_sparsity * 100.0) : "-",
        has_weight ? fmt::format("{:.2f}", l.bits_per_weight) : "-",
        l.params > 0 ? grouped(l.params) : "-",
        l.flops > 0 ? human_count(l.flops) : "-",
    });
  }
  out += "\n";
  out += render_table(rows, {false, false, false, false, false, true, true, true, true});
  return out;
}

}  // namespace compress::analysis
