// quant.smoothquant (Note [SmoothQuant]).
#include "compress/quant/smoothquant_pass.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "compress/quant/calibration.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "graph_edit.h"

namespace compress::quant {
namespace {

// Linear layers that read one value X, which smoothing treats together.
struct Group {
  ir::Value* input = nullptr;
  std::vector<ir::Node*> linears;
  std::vector<double> act_max;  // max |X_j| over calibration, per input channel
};

// The layer_norm producing the group's input, when the division can be folded into it.
ir::Node* foldable_layer_norm(const ir::Graph& g, const Group& group) {
  ir::Node* ln = group.input->producer();
  if (ln == nullptr || !ln->is(ir::OpKind::layer_norm) || ln->attr_int("normalized_ndim") != 1) return nullptr;
  if (g.is_output(group.input) || group.input->uses().size() != group.linears.size()) return nullptr;
  for (size_t i = 1; i < ln->num_inputs(); ++i) {
    if (!is_f32_constant(ln->input(i))) return nullptr;
  }
  return ln;
}

}  // namespace

Expected<pass::PassResult> SmoothQuantPass::run(ir::Graph& graph, pass::PassContext& context) {
  pass::PassResult result;
  std::vector<Group> groups;
  std::map<ir::Value*, size_t> by_input;
  for (ir::Node* n : graph.nodes()) {
    if (!n->is(ir::OpKind::linear) || !is_weighted_layer(*n) || n->input(0)->dtype() != ir::DType::kF32) continue;
    auto [it, fresh] = by_input.emplace(n->input(0), groups.size());
    if (fresh) groups.push_back(Group{n->input(0), {}, {}});
    groups[it->second].linears.push_back(n);
  }
  if (groups.empty()) {
    log_warning("quant.smoothquant: no linear layer with constant f32 weights; nothing to smooth");
    return result;
  }
  if (context.calibration == nullptr) return invalid_argument("quant.smoothquant needs calibration data (none was given)");

  std::vector<std::string> values;
  for (Group& gr : groups) {
    values.push_back(gr.input->name());
    gr.act_max.assign(static_cast<size_t>(gr.input->shape().back()), 0.0);
  }
  CalibrationOptions copts;
  copts.samples = options_.samples;
  copts.batch = options_.batch;
  copts.backend = options_.calibration_backend;
  copts.progress = context.progress;
  int64_t skipped = 0;
  COMPRESS_RETURN_IF_ERROR(for_each_batch(graph, values, *context.calibration, copts, "smoothquant statistics",
                                          [&](const std::vector<const ir::Tensor*>& seen) {
                                            for (size_t i = 0; i < groups.size(); ++i) {
                                              std::vector<double>& m = groups[i].act_max;
                                              const float* x = seen[i]->data<float>();
                                              const auto d = static_cast<int64_t>(m.size());
                                              for (int64_t k = 0; k < seen[i]->numel(); ++k) {
                                                if (!std::isfinite(x[k])) {
                                                  ++skipped;  // Note [Non-finite calibration values]
                                                  continue;
                                                }
                                                double& slot = m[static_cast<size_t>(k % d)];
                                                slot = std::max(slot, std::fabs(static_cast<double>(x[k])));
                                              }
                                            }
                                            return Status::ok();
                                          }));
  if (skipped > 0) log_warning("quant.smoothquant: {} non-finite activation values skipped", skipped);

  int64_t folded = 0, inserted = 0, dead = 0;
  for (Group& gr : groups) {
    const size_t d = gr.act_max.size();
    std::vector<double> w_max(d, 0.0);
    for (const ir::Node* n : gr.linears) {
      COMPRESS_ASSIGN_OR_RETURN(const std::vector<double> w, to_double(*n->input(1)));
      for (size_t i = 0; i < w.size(); ++i) {
        double& slot = w_max[i % d];
        slot = std::max(slot, std::fabs(w[i]));
      }
    }
    std::vector<double> s(d, 1.0);
    for (size_t j = 0; j < d; ++j) {
      const double v = std::pow(gr.act_max[j], options_.alpha) / std::pow(w_max[j], 1.0 - options_.alpha);
      if (gr.act_max[j] == 0.0 || w_max[j] == 0.0 || !std::isfinite(v) || v <= 0.0) {
        ++dead;
        continue;
      }
      s[j] = v;
    }
    for (ir::Node* n : gr.linears) {
      COMPRESS_ASSIGN_OR_RETURN(std::vector<double> w, to_double(*n->input(1)));
      for (size_t i = 0; i < w.size(); ++i) w[i] *= s[i % d];
      COMPRESS_RETURN_IF_ERROR(replace_constant_input(graph, n, 1, w, ".smoothed"));
      auto& stats = result.layers[n->name()];
      stats["smoothquant_scale_min"] = *std::min_element(s.begin(), s.end());
      stats["smoothquant_scale_max"] = *std::max_element(s.begin(), s.end());
    }
    std::vector<double> inv(d);
    for (size_t j = 0; j < d; ++j) inv[j] = 1.0 / s[j];
    if (ir::Node* ln = foldable_layer_norm(graph, gr)) {
      if (ln->num_inputs() == 1) {
        COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, from_double(inv, {static_cast<int64_t>(d)}));
        COMPRESS_ASSIGN_OR_RETURN(ir::Value * wv, graph.add_constant(graph.unique_name(ln->name() + ".weight.smoothed"), t));
        ln->add_input(wv);
      } else {
        for (size_t i = 1; i < ln->num_inputs(); ++i) {
          COMPRESS_ASSIGN_OR_RETURN(std::vector<double> p, to_double(*ln->input(i)));
          for (size_t j = 0; j < d; ++j) p[j] *= inv[j];
          COMPRESS_RETURN_IF_ERROR(replace_constant_input(graph, ln, i, p, ".smoothed"));
        }
      }
      ++folded;
    } else {
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, from_double(inv, {static_cast<int64_t>(d)}));
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * c,
                                graph.add_constant(graph.unique_name(gr.input->name() + ".smooth_scale"), t));
      COMPRESS_ASSIGN_OR_RETURN(ir::Node * mul, graph.add_node(ir::OpKind::mul, {gr.input, c}, {},
                                                               gr.input->name() + ".smoothed", gr.linears.front()));
      for (ir::Node* n : gr.linears) n->replace_input(0, mul->output());
      ++inserted;
    }
  }
  graph.remove_unused_constants();
  if (dead > 0) log_warning("quant.smoothquant: {} channels never nonzero kept scale 1", dead);
  result.counters["groups"] = static_cast<double>(groups.size());
  result.counters["folded_into_layer_norm"] = static_cast<double>(folded);
  result.counters["inserted_mul"] = static_cast<double>(inserted);
  result.counters["dead_channels"] = static_cast<double>(dead);
  result.changed = true;
  return result;
}

Expected<SmoothQuantPass::Options> SmoothQuantPass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.alpha, options.number("alpha", o.alpha, pass::Range::closed(0.0, 1.0)));
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, 1 << 24));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_backend,
                            options.string("calibration_backend", o.calibration_backend, runtime::available_backends()));
  return o;
}

}  // namespace compress::quant
