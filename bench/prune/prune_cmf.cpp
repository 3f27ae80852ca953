// Runs prune.structured on a .cmf model and writes the result, for measuring
// accuracy with `ctk eval` until `ctk prune` exists:
//
//   bench_prune_cmf MODEL.cmf OUT.cmf [key=value ...]
//
// key=value are the pass's recipe options (target_flops=0.5, ratio=0.3,
// round_to=8, criterion=bn_gamma, exclude=conv1, min_channels=4).
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "compress/io/cmf.h"
#include "compress/ir/verifier.h"
#include "compress/pass/options.h"
#include "compress/pass/registry.h"
#include "compress/prune/structured.h"

int main(int argc, char** argv) {
  using namespace compress;
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_prune_cmf MODEL.cmf OUT.cmf [key=value ...]\n");
    return 2;
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  for (int i = 3; i < argc; ++i) {
    const std::string kv = argv[i];
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "bench_prune_cmf: expected key=value, got '%s'\n", kv.c_str());
      return 2;
    }
    pairs.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "bench_prune_cmf: %s\n", s.message().c_str());
    return 1;
  };
  auto graph = io::load_cmf(argv[1]);
  if (!graph.has_value()) return fail(graph.status());
  auto options = pass::PassOptions::from_pairs(pairs, "bench_prune_cmf");
  if (!options.has_value()) return fail(options.status());
  pass::PassRegistry registry;
  if (Status s = prune::register_structured_passes(registry); !s.is_ok()) return fail(s);
  auto p = registry.create("prune.structured", options.value());
  if (!p.has_value()) return fail(p.status());
  pass::PassContext context;
  auto result = p.value()->run(graph.value(), context);
  if (!result.has_value()) return fail(result.status());
  if (Status s = ir::verify(graph.value()); !s.is_ok()) return fail(s);
  const auto& c = result.value().counters;
  std::printf("FLOPs %.0f -> %.0f (%.1f%% kept), params %.0f -> %.0f\n", c.at("flops_before"), c.at("flops_after"),
              100.0 * c.at("flops_after") / c.at("flops_before"), c.at("params_before"), c.at("params_after"));
  for (const auto& [layer, stats] : result.value().layers) {
    std::printf("  %s: %.0f -> %.0f channels\n", layer.c_str(), stats.at("channels_before"),
                stats.at("channels_after"));
  }
  if (Status s = io::save_cmf(graph.value(), argv[2]); !s.is_ok()) return fail(s);
  std::printf("wrote %s\n", argv[2]);
  return 0;
}
