// The lowrank driver: layer selection, rank rules, the latency gate and the graph rewrite shared by every method.
#include "factorize.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "compress/ir/verifier.h"
#include "compress/prune/prunable_layers.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"

namespace compress::lowrank::detail {
namespace {

using analysis::WeightedLayer;

int64_t per_sample(int64_t total, const ir::Shape& shape) {
  return shape.empty() || shape[0] <= 0 ? total : total / shape[0];
}

// MACs of one conv2d / linear node from its shapes (per batch element).
int64_t node_macs(const ir::Node& n) {
  const ir::Shape& out = n.output(0)->shape();
  const ir::Shape& w = n.input(1)->shape();
  const int64_t outputs = ir::numel(out);
  if (n.is(ir::OpKind::conv2d)) return per_sample(outputs * w[1] * w[2] * w[3], out);
  return per_sample(outputs * w[1], out);  // linear: [.., out] from [.., in]
}

// Adds the chain before `before` (or at the end) reading `x`; returns its output.
Expected<ir::Value*> add_chain(ir::Graph& g, ir::Value* x, const std::vector<ChainLayer>& chain, ir::Value* bias,
                               const std::string& name, ir::Node* before) {
  ir::Value* v = x;
  for (size_t i = 0; i < chain.size(); ++i) {
    const ChainLayer& layer = chain[i];
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * w,
                              g.add_constant(g.unique_name(name + layer.suffix + ".weight"), layer.weight));
    std::vector<ir::Value*> inputs = {v, w};
    if (i + 1 == chain.size() && bias != nullptr) inputs.push_back(bias);
    COMPRESS_ASSIGN_OR_RETURN(ir::Node * n, g.add_node(layer.op, inputs, layer.attrs, name + layer.suffix, before));
    v = n->output(0);
  }
  return v;
}

// Note [Latency gate]
// A factorization only pays where the backend runs the chain faster than the
// dense layer (aimet issue 809: fewer MACs, no faster). Each candidate is
// timed as two one-layer graphs on the target backend at the layer's input
// shape in the model: after warm-up, 9 rounds alternate the two (the order
// flips every round), each round timing each graph k times one run at a
// time (k so that a round takes >= 2 ms), and the fastest run of each side
// decides: kept when the chain's is lower. The minimum, not the median,
// because other processes on a shared machine only ever add time (measured:
// with a training job on the other core, the medians of a 20x smaller chain
// came out slower than its dense layer). Results are cached per shape
// signature within a run.
struct Timing {
  double dense_ms = 0, factorized_ms = 0;
};

Expected<Timing> time_pair(const ir::Graph& dense, const ir::Graph& factorized, const ir::Tensor& x,
                           const std::string& backend, int threads) {
  runtime::BackendOptions bo;
  bo.threads = threads;
  COMPRESS_ASSIGN_OR_RETURN(auto b, runtime::make_backend(backend, bo));
  COMPRESS_ASSIGN_OR_RETURN(auto dense_plan, b->compile(dense));
  COMPRESS_ASSIGN_OR_RETURN(auto fact_plan, b->compile(factorized));
  using clock = std::chrono::steady_clock;
  // The fastest of `times` runs, each timed alone.
  auto fastest = [&](runtime::ExecutionPlan& p, int times) -> Expected<double> {
    double best = std::numeric_limits<double>::infinity();
    for (int i = 0; i < times; ++i) {
      const auto start = clock::now();
      COMPRESS_RETURN_IF_ERROR(p.run({x}).status());
      best = std::min(best, std::chrono::duration<double, std::milli>(clock::now() - start).count());
    }
    return best;
  };
  COMPRESS_ASSIGN_OR_RETURN(double once, fastest(*dense_plan, 3));
  COMPRESS_RETURN_IF_ERROR(fastest(*fact_plan, 3).status());
  const int k = std::clamp(static_cast<int>(std::ceil(2.0 / std::max(once, 1e-4))), 1, 1000);
  Timing t{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
  for (int round = 0; round < 9; ++round) {
    const bool dense_first = round % 2 == 0;
    for (int side = 0; side < 2; ++side) {
      const bool is_dense = (side == 0) == dense_first;
      COMPRESS_ASSIGN_OR_RETURN(double ms, fastest(is_dense ? *dense_plan : *fact_plan, k));
      double& best = is_dense ? t.dense_ms : t.factorized_ms;
      best = std::min(best, ms);
    }
  }
  return t;
}

ir::Tensor random_input(const ir::ValueType& type, std::mt19937_64& rng) {
  ir::Tensor t = ir::Tensor::zeros(ir::DType::kF32, type.shape).value();
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

// The dense layer and its chain as one-layer graphs reading an input of the layer's type.
Status one_layer_graphs(const WeightedLayer& layer, const Factorization& f, ir::Graph* dense, ir::Graph* chain) {
  for (ir::Graph* g : {dense, chain}) {
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * x, g->add_input("x", layer.node->input(0)->type()));
    ir::Value* bias = nullptr;
    if (layer.bias != nullptr) {
      COMPRESS_ASSIGN_OR_RETURN(bias, g->add_constant("bias", layer.bias->constant()));
    }
    ir::Value* out = nullptr;
    if (g == dense) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * w, g->add_constant("weight", layer.weight->constant()));
      std::vector<ir::Value*> inputs = {x, w};
      if (bias != nullptr) inputs.push_back(bias);
      COMPRESS_ASSIGN_OR_RETURN(ir::Node * n, g->add_node(layer.op(), inputs, layer.node->attrs(), "dense"));
      out = n->output(0);
    } else {
      COMPRESS_ASSIGN_OR_RETURN(out, add_chain(*g, x, f.chain, bias, "chain", nullptr));
    }
    g->set_outputs({out});
  }
  return Status::ok();
}

std::string signature(const WeightedLayer& layer, const Factorization& f) {
  std::string s = fmt::format("{} {} {}", layer.op(), ir::shape_to_string(layer.node->input(0)->shape()),
                              ir::shape_to_string(layer.weight->shape()));
  for (const auto& [k, v] : layer.node->attrs()) s += " " + k + "=" + ir::attribute_to_string(v);
  for (const ChainLayer& c : f.chain) s += " | " + ir::shape_to_string(c.weight.shape());
  return s;
}

Status check_patterns(const std::vector<std::string>& patterns, const std::vector<WeightedLayer>& layers,
                      const std::string& pass_name, const char* key) {
  for (const std::string& p : patterns) {
    bool any = false;
    for (const WeightedLayer& l : layers) any = any || prune::glob_match(p, l.name());
    if (any) continue;
    std::string names;
    for (const WeightedLayer& l : layers) names += (names.empty() ? "" : ", ") + l.name();
    return invalid_argument("{}: {} pattern '{}' matches no conv2d/linear layer (layers: {})", pass_name, key, p,
                            names.empty() ? "none" : names);
  }
  return Status::ok();
}

}  // namespace

int64_t LayerShape::dense_macs() const {
  const int64_t outputs = ir::numel(output);
  const int64_t per_output = weight.size() == 4 ? weight[1] * weight[2] * weight[3] : weight[1];
  return per_sample(outputs * per_output, output);
}

Expected<int64_t> chain_macs(const std::vector<ChainLayer>& chain, const ir::Shape& input, bool has_bias) {
  ir::Graph g;
  COMPRESS_ASSIGN_OR_RETURN(ir::Value * x, g.add_input("x", ir::ValueType{ir::DType::kF32, input, nullptr}));
  ir::Value* bias = nullptr;
  if (has_bias) {
    const int64_t out = chain.back().weight.dim(0);
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor b, ir::Tensor::zeros(ir::DType::kF32, {out}));
    COMPRESS_ASSIGN_OR_RETURN(bias, g.add_constant("bias", b));
  }
  COMPRESS_RETURN_IF_ERROR(add_chain(g, x, chain, bias, "chain", nullptr).status());
  int64_t macs = 0;
  for (const ir::Node* n : g.nodes()) macs += node_macs(*n);
  return macs;
}

ChainLayer conv_layer(ir::Shape shape, const std::vector<float>& values, ir::AttributeMap attrs, std::string suffix) {
  return ChainLayer{ir::OpKind::conv2d, ir::Tensor::from_vector<float>(ir::DType::kF32, std::move(shape), values),
                    std::move(attrs), std::move(suffix)};
}

ir::AttributeMap conv_attrs(std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                            int64_t groups) {
  return {{"stride", std::move(stride)},
          {"padding", std::move(padding)},
          {"dilation", std::move(dilation)},
          {"groups", groups}};
}

ir::AttributeMap pointwise_attrs() { return conv_attrs({1, 1}, {0, 0, 0, 0}, {1, 1}, 1); }

ir::AttributeMap vertical_attrs(const ir::Node& conv, int64_t groups) {
  const auto& s = conv.attr_ints("stride");
  const auto& p = conv.attr_ints("padding");
  const auto& d = conv.attr_ints("dilation");
  return conv_attrs({s[0], 1}, {p[0], 0, p[2], 0}, {d[0], 1}, groups);
}

ir::AttributeMap horizontal_attrs(const ir::Node& conv, int64_t groups) {
  const auto& s = conv.attr_ints("stride");
  const auto& p = conv.attr_ints("padding");
  const auto& d = conv.attr_ints("dilation");
  return conv_attrs({1, s[1]}, {0, p[1], 0, p[3]}, {1, d[1]}, groups);
}

std::string separable_skip_reason(const analysis::WeightedLayer& layer) {
  if (!layer.node->is(ir::OpKind::conv2d)) return "not a convolution (lowrank.svd factorizes linears)";
  const ir::Shape& w = layer.weight->shape();
  if (w[2] < 2 || w[3] < 2) return "its kernel has a side of 1 (lowrank.svd factorizes 1x1 convolutions)";
  if (layer.node->attr_int("groups") != 1) return "a grouped or depthwise convolution";
  return "";
}

int64_t round_rank(int64_t rank, int64_t round_to, int64_t full) {
  if (round_to > 1) rank = std::max(round_to, (rank + round_to / 2) / round_to * round_to);
  return std::clamp<int64_t>(rank, 1, full);
}

int64_t largest_rank_within(int64_t full, double budget, const std::function<double(int64_t)>& cost) {
  int64_t best = 1;
  for (int64_t r = 1; r <= full; ++r) {
    if (cost(r) <= budget) best = r;
  }
  return best;
}

Expected<pass::PassResult> factorize_layers(ir::Graph& graph, const Method& method, const LowrankOptions& options,
                                            pass::PassContext& context) {
  analysis::WeightedLayerQuery query;
  query.ops = {ir::OpKind::conv2d, ir::OpKind::linear};
  query.f32_input = true;
  const std::vector<WeightedLayer> layers = analysis::weighted_layers(graph, query);
  COMPRESS_RETURN_IF_ERROR(check_patterns(options.exclude, layers, method.pass_name, "exclude"));
  std::vector<std::string> override_patterns;
  for (const auto& [p, ratio] : options.layers) override_patterns.push_back(p);
  COMPRESS_RETURN_IF_ERROR(check_patterns(override_patterns, layers, method.pass_name, "layers"));

  auto excluded = [&](const std::string& name) {
    for (const std::string& p : options.exclude) {
      if (prune::glob_match(p, name)) return true;
    }
    return false;
  };
  // Note [Activation-aware SVD]: the candidates' input statistics, from the
  // graph as it came in (every layer sees the original model's inputs).
  std::map<const ir::Node*, prune::LayerInputStats> inputs;
  if (options.activation_aware != "none") {
    if (context.calibration == nullptr) {
      return invalid_argument(
          "{}: activation_aware: {} needs calibration data (data.calibration in a recipe, --calib "
          "for ctk lowrank)",
          method.pass_name, options.activation_aware);
    }
    std::vector<prune::PrunableLayer> wanted;
    for (const prune::PrunableLayer& p : prune::prunable_layers(graph)) {
      const auto layer = analysis::as_weighted_layer(*p.node, query);
      if (layer && !excluded(p.name()) && method.skip_reason(*layer).empty()) wanted.push_back(p);
    }
    prune::ActivationStatsOptions so;
    so.samples = options.samples;
    so.batch = options.batch;
    so.backend = options.calibration_backend;
    so.hessian = options.activation_aware == "whiten";
    so.progress = context.progress;
    so.label = method.pass_name + ": input statistics";
    COMPRESS_ASSIGN_OR_RETURN(std::vector<prune::LayerInputStats> stats,
                              prune::collect_input_stats(graph, wanted, *context.calibration, so));
    for (size_t i = 0; i < wanted.size(); ++i) inputs.emplace(wanted[i].node, std::move(stats[i]));
  }

  pass::PassResult result;
  std::map<std::string, Timing> timings;
  int64_t factorized = 0, left_dense = 0, skipped = 0, macs_before = 0, macs_after = 0;
  for (size_t index = 0; index < layers.size(); ++index) {
    const WeightedLayer& layer = layers[index];
    const std::string name = layer.name();
    std::optional<double> override_ratio;
    for (const auto& [p, r] : options.layers) {
      if (!override_ratio && prune::glob_match(p, name)) override_ratio = r;
    }
    if (excluded(name)) continue;
    const std::string why_not = method.skip_reason(layer);
    if (!why_not.empty()) {
      ++skipped;
      if (override_ratio) {
        log_warning("{}: {} is named in layers but cannot be factorized: {}", method.pass_name, name, why_not);
      } else {
        log_info("{}: {} left alone: {}", method.pass_name, name, why_not);
      }
      continue;
    }
    LayerShape shape{layer.node->input(0)->shape(), layer.node->output(0)->shape(), layer.weight->shape()};
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense_w, layer.weight->constant().dense_f32(name));
    std::vector<float> w(dense_w.data<float>(), dense_w.data<float>() + dense_w.numel());
    const auto stats_it = inputs.find(layer.node);
    auto f = method.factorize(layer, shape, w, options, override_ratio.value_or(options.ratio),
                              stats_it == inputs.end() ? nullptr : &stats_it->second);
    if (!f.has_value()) return f.status().with_context(fmt::format("{}: layer '{}'", method.pass_name, name));
    COMPRESS_ASSIGN_OR_RETURN(const int64_t chain_cost, chain_macs(f->chain, shape.input, layer.bias != nullptr));
    const int64_t dense_cost = shape.dense_macs();
    auto& stats = result.layers[name];
    stats["layer_index"] = static_cast<double>(index);
    stats["rank"] = static_cast<double>(f->rank);
    if (f->rank_in > 0) stats["rank_in"] = static_cast<double>(f->rank_in);
    stats["relative_error"] = f->relative_error;
    if (f->output_error >= 0) stats["output_error"] = f->output_error;
    if (f->whitening_fallback) stats["whitening_fallback"] = 1.0;
    stats["macs_dense"] = static_cast<double>(dense_cost);
    stats["macs_factorized"] = static_cast<double>(chain_cost);
    if (f->iterations > 0) stats["iterations"] = f->iterations;  // HOOI or ALS sweeps
    if (f->hosvd_error > 0) stats["hosvd_error"] = f->hosvd_error;
    bool keep = true;
    if (options.latency_gate) {
      // At the model's batch, or at each of gate_batches: kept only when faster at every one.
      std::vector<int64_t> batches = options.gate_batches;
      if (batches.empty()) batches.push_back(shape.input.empty() ? 1 : shape.input[0]);
      ir::Graph dense_g, chain_g;
      for (size_t bi = 0; bi < batches.size(); ++bi) {
        const int64_t batch = batches[bi];
        const std::string key = fmt::format("{} @{}", signature(layer, *f), batch);
        auto it = timings.find(key);
        if (it == timings.end()) {
          if (dense_g.num_nodes() == 0) COMPRESS_RETURN_IF_ERROR(one_layer_graphs(layer, *f, &dense_g, &chain_g));
          ir::ValueType type = layer.node->input(0)->type();
          if (!type.shape.empty()) type.shape[0] = batch;
          const ir::Tensor x = random_input(type, context.rng);
          auto t = time_pair(dense_g, chain_g, x, options.backend, context.threads);
          if (!t.has_value()) {
            return t.status().with_context(fmt::format("{}: timing layer '{}' on backend '{}' at batch {}",
                                                       method.pass_name, name, options.backend, batch));
          }
          it = timings.emplace(key, *t).first;
        }
        const Timing& t = it->second;
        if (bi == 0) {
          stats["dense_ms"] = t.dense_ms;
          stats["factorized_ms"] = t.factorized_ms;
        }
        if (batches.size() > 1) {
          stats[fmt::format("dense_ms_batch{}", batch)] = t.dense_ms;
          stats[fmt::format("factorized_ms_batch{}", batch)] = t.factorized_ms;
        }
        if (t.factorized_ms >= t.dense_ms && keep) {
          keep = false;
          log_info(
              "{}: {} left dense: factorized {:.4f} ms vs dense {:.4f} ms on {} at batch {} (rank {}, {:.0f}% of "
              "the MACs)",
              method.pass_name, name, t.factorized_ms, t.dense_ms, options.backend, batch, f->rank,
              100.0 * static_cast<double>(chain_cost) / static_cast<double>(std::max<int64_t>(dense_cost, 1)));
        }
      }
    } else if (chain_cost >= dense_cost) {
      log_warning("{}: {} factorized at rank {} costs {} MACs against {} dense (no latency gate)", method.pass_name,
                  name, f->rank, chain_cost, dense_cost);
    }
    stats["factorized"] = keep ? 1.0 : 0.0;
    macs_before += dense_cost;
    if (!keep) {
      ++left_dense;
      macs_after += dense_cost;
      continue;
    }
    ++factorized;
    macs_after += chain_cost;
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * out,
                              add_chain(graph, layer.node->input(0), f->chain, layer.bias, name, layer.node));
    graph.replace_all_uses_with(layer.node->output(0), out);
    COMPRESS_RETURN_IF_ERROR(graph.remove_node(layer.node));
  }
  graph.remove_unused_constants();
  COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context(method.pass_name + ": the factorized graph"));
  result.changed = factorized > 0;
  result.counters["layers_factorized"] = static_cast<double>(factorized);
  result.counters["layers_left_dense"] = static_cast<double>(left_dense);
  result.counters["layers_skipped"] = static_cast<double>(skipped);
  result.counters["macs_before"] = static_cast<double>(macs_before);
  result.counters["macs_after"] = static_cast<double>(macs_after);
  log_info(
      "{}: {} layer(s) factorized, {} left dense by the latency gate, {} not factorizable; MACs of the candidates "
      "{} -> {}",
      method.pass_name, factorized, left_dense, skipped, macs_before, macs_after);
  return result;
}

}  // namespace compress::lowrank::detail
