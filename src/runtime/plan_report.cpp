// The parts of a plan report every backend prints the same way (backend.h).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "compress/runtime/backend.h"

namespace compress::runtime {

std::string plan_steps_text(const std::vector<PlanStep>& steps) {
  std::string s;
  for (size_t i = 0; i < steps.size(); ++i) {
    const PlanStep& st = steps[i];
    const std::string nodes = fmt::format("{}", fmt::join(st.nodes, "+"));
    s += fmt::format("  {:>3} {:<20} {:<28} {}{}\n", i, st.kind, st.implementation.empty() ? "-" : st.implementation,
                     nodes.empty() ? "" : nodes + ": ", st.detail);
  }
  return s;
}

std::string plan_fallbacks_text(const std::vector<PlanFallback>& fallbacks) {
  if (fallbacks.empty()) return "fallbacks: none\n";
  std::string s = fmt::format("fallbacks to the reference backend: {}\n", fallbacks.size());
  for (const PlanFallback& f : fallbacks) s += fmt::format("  {} ({}): {}\n", f.node, f.op, f.reason);
  return s;
}

std::string plan_profile_text(const std::vector<PlanStep>& steps, int64_t profiled_runs, size_t top) {
  if (profiled_runs == 0) return "";
  const double runs = static_cast<double>(profiled_runs);
  double total = 0;
  std::map<std::string, std::pair<double, int>> by_kind;  // ms per run, steps
  for (const PlanStep& st : steps) {
    total += st.profiled_ms / runs;
    auto& k = by_kind[st.kind];
    k.first += st.profiled_ms / runs;
    ++k.second;
  }
  std::vector<size_t> order(steps.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return steps[a].profiled_ms > steps[b].profiled_ms; });
  auto share = [total](double ms) { return total > 0 ? 100.0 * ms / total : 0.0; };
  std::string s = fmt::format("profile over {} runs (each step waited for): {:.3f} ms per run in {} steps\n",
                              profiled_runs, total, steps.size());
  s += fmt::format("  slowest {} steps:\n", std::min(top, steps.size()));
  for (size_t r = 0; r < std::min(top, order.size()); ++r) {
    const PlanStep& st = steps[order[r]];
    const std::string nodes = fmt::format("{}", fmt::join(st.nodes, "+"));
    s += fmt::format("  {:>3} {:>9.4f} ms {:>5.1f}%  {:<20} {}\n", order[r], st.profiled_ms / runs,
                     share(st.profiled_ms / runs), st.kind, nodes.empty() ? st.detail.substr(0, 60) : nodes);
  }
  s += "  by kind:\n";
  std::vector<std::pair<std::string, std::pair<double, int>>> kinds(by_kind.begin(), by_kind.end());
  std::stable_sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  for (const auto& [kind, v] : kinds) {
    s += fmt::format("      {:>9.4f} ms {:>5.1f}%  {:<20} ({} steps)\n", v.first, share(v.first), kind, v.second);
  }
  return s;
}

}  // namespace compress::runtime
