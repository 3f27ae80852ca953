// Options every lowrank pass reads (Note [Low-rank ratio and ranks]) and the family's registration.
#include <algorithm>

#include "compress/lowrank/lowrank_passes.h"
#include "compress/runtime/backend.h"

namespace compress::lowrank {

Expected<LowrankOptions> parse_lowrank_options(const pass::PassOptions& options, int64_t default_iterations,
                                               bool activation_options) {
  LowrankOptions o;
  const int rules = options.has("rank") + options.has("ratio") + options.has("energy");
  if (rules > 1) {
    return invalid_argument("{}: give one of rank, ratio and energy, not {}",
                            options.where(options.has("rank") ? "rank" : "ratio"), rules);
  }
  if (options.has("rank")) {
    COMPRESS_ASSIGN_OR_RETURN(int64_t r, options.integer("rank", 1, 1, int64_t{1} << 30));
    o.rank = r;
  }
  COMPRESS_ASSIGN_OR_RETURN(o.ratio, options.number("ratio", o.ratio, pass::Range{0.0, 1.0, true, false}));
  if (options.has("energy")) {
    COMPRESS_ASSIGN_OR_RETURN(double e, options.number("energy", 1.0, pass::Range{0.0, 1.0, true, false}));
    o.energy = e;
  }
  COMPRESS_ASSIGN_OR_RETURN(o.layers, options.number_map("layers", pass::Range{0.0, 1.0, true, false}));
  COMPRESS_ASSIGN_OR_RETURN(o.exclude, options.string_list("exclude"));
  COMPRESS_ASSIGN_OR_RETURN(o.round_to, options.integer("round_to", o.round_to, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.latency_gate, options.boolean("latency_gate", o.latency_gate));
  COMPRESS_ASSIGN_OR_RETURN(o.gate_batches, options.integer_list("gate_batches", 1, 1 << 16));
  const std::vector<std::string> backends = runtime::available_backends();
  const bool has_onednn = std::find(backends.begin(), backends.end(), "onednn") != backends.end();
  COMPRESS_ASSIGN_OR_RETURN(o.backend, options.string("backend", has_onednn ? "onednn" : "reference", backends));
  if (activation_options) {
    COMPRESS_ASSIGN_OR_RETURN(o.activation_aware,
                              options.string("activation_aware", o.activation_aware, {"none", "asvd", "whiten"}));
    COMPRESS_ASSIGN_OR_RETURN(o.alpha, options.number("alpha", o.alpha, pass::Range::closed(0.0, 4.0)));
    COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, 1 << 24));
    COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
    COMPRESS_ASSIGN_OR_RETURN(o.calibration_backend,
                              options.string("calibration_backend", o.calibration_backend, backends));
  }
  if (default_iterations > 0) {
    COMPRESS_ASSIGN_OR_RETURN(o.max_iterations, options.integer("max_iterations", default_iterations, 0, 100000));
  }
  return o;
}

// Only the iterative methods read max_iterations (an error elsewhere, as any unread option).
Expected<LowrankOptions> SvdPass::parse_options(const pass::PassOptions& options) {
  return parse_lowrank_options(options, 0, /*activation_options=*/true);
}
Expected<LowrankOptions> SpatialSvdPass::parse_options(const pass::PassOptions& options) {
  return parse_lowrank_options(options, 0);
}
Expected<LowrankOptions> Tucker2Pass::parse_options(const pass::PassOptions& options) {
  return parse_lowrank_options(options, 20);  // HOOI sweeps
}
Expected<LowrankOptions> CpPass::parse_options(const pass::PassOptions& options) {
  return parse_lowrank_options(options, 100);  // ALS sweeps
}

Status register_lowrank_passes(pass::PassRegistry& registry) {
  COMPRESS_RETURN_IF_ERROR(registry.add<SvdPass>("lowrank.svd"));
  COMPRESS_RETURN_IF_ERROR(registry.add<SpatialSvdPass>("lowrank.spatial_svd"));
  COMPRESS_RETURN_IF_ERROR(registry.add<Tucker2Pass>("lowrank.tucker2"));
  return registry.add<CpPass>("lowrank.cp");
}

}  // namespace compress::lowrank
