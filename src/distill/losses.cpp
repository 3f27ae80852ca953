// The pair losses of Note [Pair losses]: mse, l1, cosine, attention transfer, attention-map KL.
#include "compress/distill/losses.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace compress::distill {

at::Tensor mse_loss(const at::Tensor& s, const at::Tensor& t) { return (s - t.detach()).pow(2).mean(); }

at::Tensor l1_loss(const at::Tensor& s, const at::Tensor& t) { return (s - t.detach()).abs().mean(); }

at::Tensor cosine_loss(const at::Tensor& s, const at::Tensor& t) {
  const at::Tensor cos = at::cosine_similarity(s.flatten(1), t.detach().flatten(1), 1, 1e-8);
  return (1.0 - cos).mean();
}

at::Tensor spatial_attention_map(const at::Tensor& x) {
  const at::Tensor a = x.pow(2).mean(1).flatten(1);
  // F.normalize: a / max(||a||, eps)
  return a / a.norm(2, {1}, true).clamp_min(1e-12);
}

at::Tensor attention_transfer_loss(const at::Tensor& s, const at::Tensor& t) {
  return (spatial_attention_map(s) - spatial_attention_map(t.detach())).pow(2).mean();
}

at::Tensor attention_map_kl(const at::Tensor& student, const at::Tensor& teacher) {
  at::Tensor s = student;
  at::Tensor t = teacher.detach();
  if (s.size(1) != t.size(1)) {
    s = s.mean(1, true);
    t = t.mean(1, true);
  }
  const at::Tensor log_s = s.clamp_min(1e-12).log();
  const at::Tensor log_t = t.clamp_min(1e-12).log();
  const double rows = static_cast<double>(s.size(0) * s.size(1) * s.size(2));
  return (t * (log_t - log_s)).sum() / rows;
}

const std::vector<PairLossSpec>& pair_losses() {
  using Match = PairLossSpec::Match;
  static const std::vector<PairLossSpec> table = {
      {PairLoss::kMse, "mse", Match::kShape, mse_loss},
      {PairLoss::kL1, "l1", Match::kShape, l1_loss},
      {PairLoss::kCosine, "cosine", Match::kShape, cosine_loss},
      {PairLoss::kAttentionTransfer, "at", Match::kSpatial, attention_transfer_loss},
      {PairLoss::kAttentionKl, "attention_kl", Match::kAttention, attention_map_kl},
  };
  return table;
}

const PairLossSpec& pair_loss_spec(PairLoss loss) {
  for (const PairLossSpec& spec : pair_losses()) {
    if (spec.loss == loss) return spec;
  }
  return pair_losses().front();  // unreachable: the table has every enumerator
}

std::string pair_loss_names() {
  std::vector<std::string> names;
  for (const PairLossSpec& spec : pair_losses()) names.emplace_back(spec.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

Expected<PairLoss> pair_loss_from_name(const std::string& name) {
  for (const PairLossSpec& spec : pair_losses()) {
    if (name == spec.name) return spec.loss;
  }
  return invalid_argument("unknown pair loss '{}' (known: {})", name, pair_loss_names());
}

}  // namespace compress::distill
