// The lowrank pass family: lowrank.svd, lowrank.spatial_svd, lowrank.tucker2 and lowrank.cp, their options and
// registration.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compress/pass/pass.h"
#include "compress/pass/registry.h"

namespace compress::lowrank {

// Note [Low-rank ratio and ranks]
// How much of a layer a factorization keeps is chosen by exactly one rule:
//  - ratio F in (0, 1] (the default, 0.5): the kept fraction of the layer's
//    MACs. The rank is the largest whose factorized chain costs at most
//    F x the dense layer's multiply-accumulates at the model's shapes.
//  - rank R: the rank itself (Tucker-2: both inner ranks, each capped by
//    its side's channels); above the full rank it is an error.
//  - energy E in (0, 1]: the smallest rank whose singular values keep E of
//    sum s^2 (Tucker-2: per mode).
// Then rounded to the nearest multiple of round_to (at least round_to, at
// most the full rank). `layers` overrides the ratio per name pattern.
struct LowrankOptions {
  std::optional<int64_t> rank;
  std::optional<double> energy;
  double ratio = 0.5;
  std::vector<std::pair<std::string, double>> layers;  // per-layer ratio by pattern; the first match wins
  std::vector<std::string> exclude;                    // name patterns left dense
  int64_t round_to = 1;
  // Note [Latency gate]: keep a factorization only where `backend` runs the
  // factorized chain faster than the dense layer at the model's shapes.
  bool latency_gate = true;
  std::string backend = "onednn";     // "reference" when onednn is not built
  std::vector<int64_t> gate_batches;  // batch sizes to time at (empty: the model's); faster at all of them
  int64_t max_iterations = 20;        // tucker2: HOOI sweeps (default 20); cp: ALS sweeps (default 100)
  // lowrank.svd only, Note [Activation-aware SVD] (decompose.h): none,
  // asvd (scale by input RMS^alpha) or whiten (SVD-LLM), from the first
  // `samples` of PassContext::calibration in batches of `batch`.
  std::string activation_aware = "none";
  double alpha = 0.5;
  int64_t samples = 128;
  int64_t batch = 32;
  std::string calibration_backend = "reference";
};

// Reads rank, ratio, energy (at most one of them), layers, exclude, round_to,
// latency_gate, gate_batches, backend; when `default_iterations` > 0
// (tucker2, cp) max_iterations with that default; with `activation_options`
// (svd) activation_aware, alpha, samples, batch and calibration_backend.
Expected<LowrankOptions> parse_lowrank_options(const pass::PassOptions& options, int64_t default_iterations,
                                               bool activation_options = false);

// One pass per method (svd_pass.cpp, spatial_svd_pass.cpp, tucker2_pass.cpp):
//  - lowrank.svd: linear and 1x1 conv2d, W[m, n] ~= U[m, r] V[r, n] as two
//    layers (the bias on the second);
//  - lowrank.spatial_svd: a k x k conv2d as (k x 1 conv to r channels) then
//    (1 x k conv), Note [Spatial SVD] in decompose.h;
//  - lowrank.tucker2: a k x k conv2d as 1x1 (to r_in), the k x k core
//    (r_in -> r_out) and 1x1 (to the output channels), Note [Tucker-2];
//  - lowrank.cp: a k x k conv2d as 1x1 (to R), k x 1 and 1 x k depthwise,
//    1x1 (to the outputs), Note [CP decomposition] (rank or ratio only).
// Grouped and depthwise convolutions are left alone (logged).
#define COMPRESS_LOWRANK_PASS(Class, pass_name)                                            \
  class Class : public pass::Pass {                                                        \
   public:                                                                                 \
    using Options = LowrankOptions;                                                        \
    static Expected<Options> parse_options(const pass::PassOptions& options);              \
    Class() = default;                                                                     \
    explicit Class(Options options) : options_(std::move(options)) {}                      \
    std::string name() const override { return pass_name; }                                \
    Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override; \
    pass::PassNeeds needs() const override {                                               \
      pass::PassNeeds n;                                                                   \
      n.calibration = options_.activation_aware != "none";                                 \
      return n;                                                                            \
    }                                                                                      \
                                                                                           \
   private:                                                                                \
    Options options_;                                                                      \
  };
COMPRESS_LOWRANK_PASS(SvdPass, "lowrank.svd")
COMPRESS_LOWRANK_PASS(SpatialSvdPass, "lowrank.spatial_svd")
COMPRESS_LOWRANK_PASS(Tucker2Pass, "lowrank.tucker2")
COMPRESS_LOWRANK_PASS(CpPass, "lowrank.cp")
#undef COMPRESS_LOWRANK_PASS

// Registers lowrank.svd, lowrank.spatial_svd, lowrank.tucker2 and lowrank.cp.
Status register_lowrank_passes(pass::PassRegistry& registry);

}  // namespace compress::lowrank
