// The shared pruning loop of prune.magnitude and prune.nm.
#include "layer_pruning.h"

#include <cmath>

#include "compress/prune/activation_stats.h"
#include "compress/prune/masks.h"
#include "compress/prune/schedule.h"
#include "compress/support/logging.h"

namespace compress::prune::detail {
namespace {

std::vector<uint8_t> zeros_of(const std::vector<float>& w) {
  std::vector<uint8_t> z(w.size());
  for (size_t i = 0; i < w.size(); ++i) z[i] = w[i] == 0.0f ? 1 : 0;
  return z;
}

int64_t count_zeros(const std::vector<float>& w) {
  int64_t z = 0;
  for (float v : w) z += v == 0.0f ? 1 : 0;
  return z;
}

ActivationStatsOptions stats_options(const PruneJob& job, const pass::PassContext& context, bool hessian) {
  ActivationStatsOptions o;
  o.samples = job.common.samples;
  o.batch = job.common.batch;
  o.backend = job.common.calibration_backend;
  o.hessian = hessian;
  o.progress = context.progress;
  return o;
}

// The matmul N:M groups run down the stored matrix's columns, which the nm
// layout cannot describe (Note [N:M pruning]).
ir::SparseFormat format_for(const PruneJob& job, const PrunableLayer& layer) {
  if (job.format == ir::SparseFormat::kNM && layer.transposed) return ir::SparseFormat::kCsr;
  return job.format;
}

// One step: every layer pruned to `ratios[i]` (or N:M).
Status prune_step(ir::Graph& graph, const std::vector<SelectedLayer>& layers, const std::vector<double>& ratios,
                  const PruneJob& job, pass::PassContext& context) {
  const bool nm = job.n > 0;
  std::vector<PrunableLayer> plain;
  for (const SelectedLayer& s : layers) plain.push_back(s.layer);

  if (job.criterion == Criterion::kSparseGpt) {
    // Sequential, as in the paper: each layer's Hessian comes from inputs
    // that already went through the pruned layers before it.
    SparseGptOptions sopts{job.common.damp, job.common.block_size};
    for (size_t i = 0; i < layers.size(); ++i) {
      const PrunableLayer& l = plain[i];
      ActivationStatsOptions sopts_stats = stats_options(job, context, /*hessian=*/true);
      sopts_stats.label = fmt::format("{}: sparsegpt Hessian of {} ({}/{})", job.pass_name, l.name(), i + 1, layers.size());
      COMPRESS_ASSIGN_OR_RETURN(std::vector<LayerInputStats> stats,
                                collect_input_stats(graph, {l}, *context.calibration, sopts_stats));
      COMPRESS_ASSIGN_OR_RETURN(std::vector<float> w, canonical_weights(l));
      const int64_t rows_g = l.rows / l.groups;
      for (int64_t g = 0; g < l.groups; ++g) {
        std::vector<float> part(w.begin() + g * rows_g * l.cols, w.begin() + (g + 1) * rows_g * l.cols);
        PruneTarget target;
        target.ratio = ratios[i];
        target.n = job.n;
        target.m = job.m;
        // This group's share of the layer's exact total.
        target.count = pruned_count(ratios[i], (g + 1) * rows_g * l.cols) - pruned_count(ratios[i], g * rows_g * l.cols);
        COMPRESS_RETURN_IF_ERROR(sparsegpt_prune(part, rows_g, l.cols,
                                                 stats[0].hessian.data() + g * l.cols * l.cols, target, sopts)
                                     .with_context(fmt::format("{}: layer '{}'", job.pass_name, l.name())));
        std::copy(part.begin(), part.end(), w.begin() + g * rows_g * l.cols);
      }
      COMPRESS_RETURN_IF_ERROR(store_weights(l, w, format_for(job, l), job.n, job.m));
    }
    return Status::ok();
  }

  std::vector<LayerInputStats> stats;
  if (job.criterion == Criterion::kWanda) {
    ActivationStatsOptions wanda_stats = stats_options(job, context, /*hessian=*/false);
    wanda_stats.label = job.pass_name + ": wanda input norms";
    COMPRESS_ASSIGN_OR_RETURN(stats, collect_input_stats(graph, plain, *context.calibration, wanda_stats));
  }
  std::vector<std::vector<float>> weights(layers.size()), scores(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    COMPRESS_ASSIGN_OR_RETURN(weights[i], canonical_weights(plain[i]));
    scores[i] = job.criterion == Criterion::kWanda
                    ? wanda_scores(weights[i], plain[i].rows, plain[i].cols, stats[i])
                    : magnitude_scores(weights[i]);
  }

  if (job.global && !nm) {
    // One ranking over every layer that has no ratio of its own.
    std::vector<float> all_scores;
    std::vector<uint8_t> all_prior;
    std::vector<size_t> members;
    for (size_t i = 0; i < layers.size(); ++i) {
      if (layers[i].overridden) continue;
      members.push_back(i);
      all_scores.insert(all_scores.end(), scores[i].begin(), scores[i].end());
      const std::vector<uint8_t> z = zeros_of(weights[i]);
      all_prior.insert(all_prior.end(), z.begin(), z.end());
    }
    const double ratio = members.empty() ? 0.0 : ratios[members[0]];
    const std::vector<uint8_t> mask =
        lowest_k(all_scores, pruned_count(ratio, static_cast<int64_t>(all_scores.size())), &all_prior);
    size_t offset = 0;
    for (size_t i : members) {
      const std::vector<uint8_t> part(mask.begin() + static_cast<std::ptrdiff_t>(offset),
                                      mask.begin() + static_cast<std::ptrdiff_t>(offset + weights[i].size()));
      offset += weights[i].size();
      apply_mask(weights[i], part);
      COMPRESS_RETURN_IF_ERROR(store_weights(plain[i], weights[i], format_for(job, plain[i]), job.n, job.m));
    }
  }

  for (size_t i = 0; i < layers.size(); ++i) {
    if (job.global && !nm && !layers[i].overridden) continue;
    const PrunableLayer& l = plain[i];
    const std::vector<uint8_t> prior = zeros_of(weights[i]);
    std::vector<uint8_t> mask;
    if (nm) {
      mask = nm_mask(scores[i], l.rows, l.cols, job.n, job.m);
    } else if (job.row_comparison) {
      mask = lowest_per_row(scores[i], l.rows, l.cols, ratios[i], &prior);
    } else {
      mask = lowest_k(scores[i], pruned_count(ratios[i], l.params()), &prior);
    }
    apply_mask(weights[i], mask);
    COMPRESS_RETURN_IF_ERROR(store_weights(l, weights[i], format_for(job, l), job.n, job.m));
  }
  return Status::ok();
}

}  // namespace

Expected<pass::PassResult> prune_layers(ir::Graph& graph, const std::vector<SelectedLayer>& selected,
                                        const PruneJob& job, pass::PassContext& context) {
  pass::PassResult result;
  const bool nm = job.n > 0;
  std::vector<SelectedLayer> layers;
  for (const SelectedLayer& s : selected) {
    if (nm && s.layer.cols % job.m != 0) {
      log_warning("{}: '{}' has {} input columns, not a multiple of {}; left dense", job.pass_name, s.layer.name(),
                  s.layer.cols, job.m);
      result.layers[s.layer.name()] = {{"sparsity", s.layer.weight->constant().sparsity()},
                                       {"params", static_cast<double>(s.layer.params())},
                                       {"skipped", 1.0}};
      continue;
    }
    if (!nm && s.ratio <= 0.0) continue;
    layers.push_back(s);
  }
  if (layers.empty()) {
    log_warning("{}: no layer to prune", job.pass_name);
    return result;
  }
  // Everything that can fail on user input, before the first weight changes.
  if (needs_calibration(job.criterion) && context.calibration == nullptr) {
    return invalid_argument("{}: criterion '{}' needs calibration data (none was given)", job.pass_name,
                            criterion_name(job.criterion));
  }
  for (const SelectedLayer& s : layers) {
    COMPRESS_ASSIGN_OR_RETURN(std::vector<float> w, canonical_weights(s.layer));
    for (float v : w) {
      if (!std::isfinite(v)) {
        return invalid_argument("{}: weight '{}' of '{}' holds NaN or Inf; cannot rank its weights", job.pass_name,
                                s.layer.weight->name(), s.layer.name());
      }
    }
  }

  const int64_t steps = nm ? 1 : std::max<int64_t>(1, job.steps);
  for (int64_t step = 1; step <= steps; ++step) {
    std::vector<double> ratios;
    for (const SelectedLayer& s : layers) {
      ratios.push_back(step == steps ? s.ratio : cubic_sparsity(0.0, s.ratio, step, steps));
    }
    COMPRESS_RETURN_IF_ERROR(prune_step(graph, layers, ratios, job, context));
  }

  int64_t total = 0, zeros = 0;
  for (const SelectedLayer& s : layers) {
    COMPRESS_ASSIGN_OR_RETURN(std::vector<float> w, canonical_weights(s.layer));
    const int64_t z = count_zeros(w);
    total += s.layer.params();
    zeros += z;
    auto& st = result.layers[s.layer.name()];
    st["sparsity"] = static_cast<double>(z) / static_cast<double>(s.layer.params());
    st["params"] = static_cast<double>(s.layer.params());
    st["target"] = nm ? 1.0 - static_cast<double>(job.n) / static_cast<double>(job.m) : s.ratio;
  }
  result.counters["pruned_layers"] = static_cast<double>(layers.size());
  result.counters["pruned_params"] = static_cast<double>(total);
  result.counters["zero_params"] = static_cast<double>(zeros);
  result.counters["sparsity"] = total > 0 ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
  result.changed = true;
  return result;
}

}  // namespace compress::prune::detail
