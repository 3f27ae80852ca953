// Distiller: pair parsing and resolution, adapters, the teacher run once per step, the combined loss
// (Notes [Distillation loss], [Pair resolution]).
#include "compress/distill/distiller.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/utils.h>

#include <cmath>
#include <map>
#include <set>

#include "compress/distill/kd_loss.h"
#include "compress/prune/prunable_layers.h"

namespace compress::distill {
namespace {

bool is_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::string shape_text(const ir::Shape& shape) { return ir::shape_to_string(shape); }

// One side of a pair: the values it names, in topological order.
Expected<std::vector<const ir::Value*>> resolve_side(const ir::Graph& graph, const std::string& side,
                                                     const char* model) {
  std::vector<const ir::Value*> out;
  if (is_glob(side)) {
    for (const ir::Node* node : graph.nodes()) {
      if (node->num_outputs() > 0 && prune::glob_match(side, node->name())) out.push_back(node->output(0));
    }
    if (out.empty()) return not_found("the pattern '{}' matches no node of the {}", side, model);
    return out;
  }
  if (const ir::Node* node = graph.find_node(side); node != nullptr && node->num_outputs() > 0) {
    return std::vector<const ir::Value*>{node->output(0)};
  }
  if (const ir::Value* value = graph.find_value(side); value != nullptr) return std::vector<const ir::Value*>{value};
  return not_found("the {} has no node or value named '{}' (ctk inspect lists them)", model, side);
}

// Student match i of s, teacher match of t, by relative depth.
size_t by_depth(size_t i, size_t s, size_t t) {
  const auto j =
      static_cast<size_t>(std::llround(static_cast<double>(i + 1) * static_cast<double>(t) / static_cast<double>(s)));
  return std::min(t, std::max<size_t>(j, 1)) - 1;
}

struct TransformerValues {
  std::vector<const ir::Value*> attention;  // softmax outputs [N, heads, L, L]
  std::vector<const ir::Value*> hidden;     // each block's last [N, L, D] residual add
};

Expected<TransformerValues> transformer_values(const ir::Graph& graph, const char* model) {
  TransformerValues found;
  const std::vector<ir::Node*> nodes = graph.nodes();
  std::vector<size_t> at;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const ir::Node* n = nodes[i];
    if (!n->is(ir::OpKind::softmax) || n->num_outputs() != 1) continue;
    const ir::Shape& s = n->output(0)->shape();
    if (s.size() == 4 && s[2] == s[3]) {
      found.attention.push_back(n->output(0));
      at.push_back(i);
    }
  }
  if (found.attention.empty()) {
    return not_found("pairs 'auto': the {} has no attention maps (softmax outputs [N, heads, L, L]); name the pairs",
                     model);
  }
  for (size_t k = 0; k < at.size(); ++k) {
    const size_t end = k + 1 < at.size() ? at[k + 1] : nodes.size();
    const ir::Value* last = nullptr;
    for (size_t i = at[k] + 1; i < end; ++i) {
      const ir::Node* n = nodes[i];
      if (n->is(ir::OpKind::add) && n->num_outputs() == 1 && n->output(0)->shape().size() == 3) last = n->output(0);
    }
    if (last == nullptr) {
      return not_found("pairs 'auto': the {} has no residual add [N, L, D] after attention map '{}'", model,
                       found.attention[k]->name());
    }
    found.hidden.push_back(last);
  }
  return found;
}

std::vector<int64_t> dims_of(const ir::Shape& shape) { return {shape.begin(), shape.end()}; }

}  // namespace

std::string ResolvedPair::label() const { return fmt::format("{}={}:{}", student, teacher, pair_loss_spec(loss).name); }

Expected<PairSpec> parse_pair(const std::string& text) {
  PairSpec p;
  p.text = text;
  if (text == "auto") {
    p.automatic = true;
    return p;
  }
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return invalid_argument("pair '{}': expected STUDENT=TEACHER[:LOSS[:WEIGHT]] or auto", text);
  }
  p.student = text.substr(0, eq);
  std::string rest = text.substr(eq + 1);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t colon = rest.find(':', start);
    parts.push_back(rest.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() > 3 || parts[0].empty()) {
    return invalid_argument("pair '{}': expected STUDENT=TEACHER[:LOSS[:WEIGHT]] or auto", text);
  }
  p.teacher = parts[0];
  if (parts.size() > 1) {
    Expected<PairLoss> loss = pair_loss_from_name(parts[1]);
    if (!loss.has_value()) return loss.status().with_context(fmt::format("pair '{}'", text));
    p.loss = *loss;
  }
  if (parts.size() > 2) {
    char* end = nullptr;
    p.weight = std::strtod(parts[2].c_str(), &end);
    if (parts[2].empty() || end != parts[2].c_str() + parts[2].size() || !std::isfinite(p.weight) || p.weight < 0) {
      return invalid_argument("pair '{}': the weight '{}' is not a number >= 0", text, parts[2]);
    }
  }
  return p;
}

namespace {

// A distillation term's share of the loss (Note [Distillation loss]): the
// static weight, or `ratio` rescaled to weight times the label loss.
at::Tensor balanced(const at::Tensor& value, double weight, Balance balance, const at::Tensor& ce) {
  if (balance == Balance::kStatic) return value * weight;
  return value * (weight * ce.detach() / value.detach().clamp_min(1e-12));
}

}  // namespace

Expected<std::unique_ptr<Distiller>> Distiller::create(const ir::Graph& teacher,
                                                       compress::torch::TrainableModel& student,
                                                       DistillerOptions options) {
  if (!(options.temperature > 0) || !std::isfinite(options.temperature)) {
    return invalid_argument("temperature must be > 0, got {}", options.temperature);
  }
  if (!(options.alpha >= 0 && options.alpha <= 1)) {
    return invalid_argument("alpha must be in [0, 1], got {}", options.alpha);
  }
  if (!(options.logit_weight >= 0) || !std::isfinite(options.logit_weight)) {
    return invalid_argument("logit_weight must be >= 0, got {}", options.logit_weight);
  }
  const ir::Graph& sg = student.graph();
  if (sg.inputs().size() != 1 || teacher.inputs().size() != 1) {
    return invalid_argument("distillation needs one input per model; the student has {}, the teacher {}",
                            sg.inputs().size(), teacher.inputs().size());
  }
  const ir::Shape& si = sg.inputs()[0]->shape();
  const ir::Shape& ti = teacher.inputs()[0]->shape();
  if (si.size() != ti.size() || !std::equal(si.begin() + 1, si.end(), ti.begin() + 1) ||
      sg.inputs()[0]->dtype() != teacher.inputs()[0]->dtype()) {
    return invalid_argument("the student's input '{}' {} and the teacher's input '{}' {} differ (beyond the batch)",
                            sg.inputs()[0]->name(), shape_text(si), teacher.inputs()[0]->name(), shape_text(ti));
  }
  if (sg.outputs().empty() || teacher.outputs().empty()) {
    return invalid_argument("the student or the teacher has no outputs");
  }
  const ir::Shape& so = sg.outputs()[0]->shape();
  const ir::Shape& to = teacher.outputs()[0]->shape();
  if (so.size() != 2 || to.size() != 2) {
    return invalid_argument("the first outputs must be logits [N, classes]; the student's is {}, the teacher's {}",
                            shape_text(so), shape_text(to));
  }
  if (so[1] != to[1]) {
    return invalid_argument("the student has {} output classes and the teacher {}; they must classify alike", so[1],
                            to[1]);
  }

  std::unique_ptr<Distiller> d(new Distiller());
  d->options_ = options;
  d->student_ = &student;
  std::mt19937_64 rng(options.seed);
  // Resolve every pair to (student value, teacher value, loss, weight).
  struct Raw {
    const ir::Value* s;
    const ir::Value* t;
    PairLoss loss;
    double weight;
    std::string text;
  };
  std::vector<Raw> raw;
  for (const std::string& text : options.pairs) {
    COMPRESS_ASSIGN_OR_RETURN(PairSpec spec, parse_pair(text));
    if (spec.automatic) {
      COMPRESS_ASSIGN_OR_RETURN(TransformerValues s, transformer_values(sg, "student"));
      COMPRESS_ASSIGN_OR_RETURN(TransformerValues t, transformer_values(teacher, "teacher"));
      for (size_t i = 0; i < s.attention.size(); ++i) {
        const size_t j = by_depth(i, s.attention.size(), t.attention.size());
        raw.push_back({s.attention[i], t.attention[j], PairLoss::kAttentionKl, 1.0, text});
        raw.push_back({s.hidden[i], t.hidden[j], PairLoss::kMse, 1.0, text});
      }
      continue;
    }
    Expected<std::vector<const ir::Value*>> s = resolve_side(sg, spec.student, "student");
    if (!s.has_value()) return s.status().with_context(fmt::format("pair '{}'", text));
    Expected<std::vector<const ir::Value*>> t = resolve_side(teacher, spec.teacher, "teacher");
    if (!t.has_value()) return t.status().with_context(fmt::format("pair '{}'", text));
    if (!is_glob(spec.student) && t->size() > 1) {
      return invalid_argument("pair '{}': one student value and {} teacher values; use a pattern on both sides", text,
                              t->size());
    }
    for (size_t i = 0; i < s->size(); ++i) {
      raw.push_back({(*s)[i], (*t)[by_depth(i, s->size(), t->size())], spec.loss, spec.weight, text});
    }
  }
  // The runner returns the logits first (slot 0), then each distinct value.
  std::vector<std::string> teacher_values;
  std::map<std::string, size_t> teacher_slot = {{teacher.outputs()[0]->name(), 0}};
  for (const Raw& r : raw) {
    for (const auto& [v, model] : {std::pair{r.s, "student"}, std::pair{r.t, "teacher"}}) {
      if (v->is_constant() || v->dtype() != ir::DType::kF32) {
        return invalid_argument("pair '{}': the {} value '{}' is {}; pairs compare f32 activations", r.text, model,
                                v->name(), v->is_constant() ? "a constant" : ir::dtype_name(v->dtype()));
      }
    }
    Expected<Adapter> adapter = Adapter::create(r.loss, dims_of(r.s->shape()), dims_of(r.t->shape()), rng);
    if (!adapter.has_value()) {
      return adapter.status().with_context(
          fmt::format("pair '{}' (student '{}', teacher '{}')", r.text, r.s->name(), r.t->name()));
    }
    ResolvedPair pair{r.s->name(), r.t->name(), r.loss, r.weight, std::move(*adapter)};
    if (!pair.adapter.identity()) {
      std::vector<at::Tensor> live;
      const std::vector<at::Tensor> params = pair.adapter.parameters();
      for (size_t k = 0; k < params.size(); ++k) {
        const std::string name = fmt::format("distill.adapter.{}.{}", d->pairs_.size(), k == 0 ? "weight" : "bias");
        COMPRESS_ASSIGN_OR_RETURN(at::Tensor t, student.add_parameter(name, params[k]));
        live.push_back(t);
      }
      pair.adapter.set_parameters(live);
    }
    auto [it, inserted] = teacher_slot.emplace(pair.teacher, teacher_values.size() + 1);
    if (inserted) teacher_values.push_back(pair.teacher);
    d->teacher_index_.push_back(it->second);
    d->pairs_.push_back(std::move(pair));
  }
  COMPRESS_ASSIGN_OR_RETURN(d->teacher_, TeacherRunner::create(teacher, teacher_values, options.teacher_backend));
  std::vector<std::string> taps;
  std::set<std::string> seen;
  for (const ResolvedPair& p : d->pairs_) {
    if (seen.insert(p.student).second) taps.push_back(p.student);
  }
  COMPRESS_RETURN_IF_ERROR(student.set_taps(taps));
  return d;
}

Expected<DistillLossParts> Distiller::loss(const std::vector<at::Tensor>& student_outputs,
                                           const ::torch::OrderedDict<std::string, at::Tensor>& taps,
                                           const std::vector<at::Tensor>& teacher_outputs,
                                           const at::Tensor& labels) const {
  const DistillerOptions& o = options_;
  if (student_outputs.empty() || student_outputs[0].dim() != 2) {
    return invalid_argument("the student's first output must be logits [batch, classes]");
  }
  if (o.alpha == 0) {
    // Labels alone (the baseline): the teacher is not consulted.
    DistillLossParts parts;
    parts.ce = at::cross_entropy_loss(student_outputs[0], labels);
    parts.kd = at::zeros({}, student_outputs[0].options());
    parts.pairs.assign(pairs_.size(), parts.kd);
    parts.total = parts.ce;
    return parts;
  }
  if (teacher_outputs.size() != teacher_->names().size()) {
    return invalid_argument("{} teacher outputs given, {} expected ({})", teacher_outputs.size(),
                            teacher_->names().size(), fmt::join(teacher_->names(), ", "));
  }
  const at::Tensor& s = student_outputs[0];
  const at::Tensor t = teacher_outputs[0].detach();
  if (t.sizes() != s.sizes()) {
    return invalid_argument("the teacher's logits {} differ in shape from the student's {}", fmt::join(t.sizes(), "x"),
                            fmt::join(s.sizes(), "x"));
  }
  DistillLossParts parts;
  parts.ce = at::cross_entropy_loss(s, labels);
  parts.kd = o.logit_weight > 0 ? kd_divergence(s, t, o.temperature) : at::zeros({}, s.options());
  at::Tensor distill = at::zeros({}, s.options());
  if (o.logit_weight > 0) distill = distill + balanced(parts.kd, o.logit_weight, o.balance, parts.ce);
  for (size_t i = 0; i < pairs_.size(); ++i) {
    const ResolvedPair& p = pairs_[i];
    const at::Tensor* sv = taps.find(p.student);
    if (sv == nullptr) return not_found("the student value '{}' was not tapped", p.student);
    const at::Tensor& tv = teacher_outputs[teacher_index_[i]];
    const at::Tensor mapped = p.adapter.apply(*sv);
    if (pair_loss_spec(p.loss).match == PairLossSpec::Match::kShape && mapped.sizes() != tv.sizes()) {
      return invalid_argument("pair {}: the adapted student value is {} and the teacher's {}", p.label(),
                              fmt::join(mapped.sizes(), "x"), fmt::join(tv.sizes(), "x"));
    }
    at::Tensor value = pair_loss_spec(p.loss).compute(mapped, tv);
    if (p.weight > 0) distill = distill + balanced(value, p.weight, o.balance, parts.ce);
    parts.pairs.push_back(std::move(value));
  }
  parts.total = parts.ce * (1.0 - o.alpha) + distill * o.alpha;
  return parts;
}

Expected<DistillLossParts> Distiller::loss(const at::Tensor& inputs, const at::Tensor& labels) {
  COMPRESS_ASSIGN_OR_RETURN(compress::torch::TappedForward forward, student_->try_forward_with_taps({inputs}));
  std::vector<at::Tensor> teacher_outputs;
  if (options_.alpha > 0) {
    ::torch::NoGradGuard no_grad;
    COMPRESS_ASSIGN_OR_RETURN(teacher_outputs, teacher_->run(inputs));
  }
  return loss(forward.outputs, forward.taps, teacher_outputs, labels);
}

Expected<const DistillLossParts*> Distiller::step_loss(const compress::torch::StepContext& step,
                                                       const std::shared_ptr<const TeacherCache>& cache) {
  StepCache& memo = step_cache_;
  if (memo.step == step.step && memo.parts.total.defined()) return &memo.parts;
  if (!step.labels.defined()) return invalid_argument("distillation needs labelled training data");
  std::vector<at::Tensor> teacher_outputs;
  if (options_.alpha == 0) {
    // no teacher run: loss() needs none at alpha 0
  } else if (cache) {
    COMPRESS_ASSIGN_OR_RETURN(teacher_outputs, cache->gather(step.samples));
  } else {
    ::torch::NoGradGuard no_grad;
    COMPRESS_ASSIGN_OR_RETURN(teacher_outputs, teacher_->run(step.inputs));
  }
  COMPRESS_ASSIGN_OR_RETURN(memo.parts, loss(step.outputs, step.taps, teacher_outputs, step.labels));
  memo.step = step.step;
  return &memo.parts;
}

compress::torch::LossTerms Distiller::trainer_terms(std::shared_ptr<const TeacherCache> cache) {
  using compress::torch::StepContext;
  const DistillerOptions& o = options_;
  // The Trainer multiplies each term by its weight; with balance "ratio" the
  // pair and kd values are rescaled inside, so their weight is alpha alone.
  const bool ratio = o.balance == Balance::kRatio;
  std::vector<std::string> taps;
  for (const ResolvedPair& p : pairs_) taps.push_back(p.student);
  compress::torch::LossTerms terms;
  terms.push_back(compress::torch::make_loss_term(
      "ce", 1.0 - o.alpha,
      [this, cache](const StepContext& step) -> Expected<at::Tensor> {
        COMPRESS_ASSIGN_OR_RETURN(const DistillLossParts* parts, step_loss(step, cache));
        return parts->ce;
      },
      taps));
  auto scaled = [this](const at::Tensor& value, double weight) {
    return balanced(value, weight, Balance::kRatio, step_cache_.parts.ce);
  };
  const double kd_weight = o.alpha > 0 ? o.logit_weight : 0.0;
  terms.push_back(compress::torch::make_loss_term(
      "kd", o.alpha * (ratio ? (kd_weight > 0 ? 1.0 : 0.0) : kd_weight),
      [this, cache, ratio, scaled, kd_weight](const StepContext& step) -> Expected<at::Tensor> {
        COMPRESS_ASSIGN_OR_RETURN(const DistillLossParts* parts, step_loss(step, cache));
        return ratio && kd_weight > 0 ? scaled(parts->kd, kd_weight) : parts->kd;
      }));
  for (size_t i = 0; i < pairs_.size(); ++i) {
    const double w = pairs_[i].weight;
    terms.push_back(compress::torch::make_loss_term(
        pairs_[i].label(), o.alpha * (ratio ? (w > 0 ? 1.0 : 0.0) : w),
        [this, cache, ratio, scaled, w, i](const StepContext& step) -> Expected<at::Tensor> {
          COMPRESS_ASSIGN_OR_RETURN(const DistillLossParts* parts, step_loss(step, cache));
          return ratio && w > 0 ? scaled(parts->pairs[i], w) : parts->pairs[i];
        }));
  }
  return terms;
}

}  // namespace compress::distill
