// The distillation losses between one student value and one teacher value (features, attention), one table.
#pragma once

// Only the distill layer (which links LibTorch) includes this.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "compress/support/status.h"

namespace compress::distill {

// Note [Pair losses]
// Each loss compares a student value s with a teacher value t of the same
// shape (after the adapter, Note [Adapters]), batch first, and is a mean so
// that its scale does not grow with the batch or the feature size:
//   mse           mean((s - t)^2) over every element
//   l1            mean(|s - t|)
//   cosine        mean over samples of 1 - cos(s_n, t_n), each sample's value flattened
//   at            attention transfer (Zagoruyko & Komodakis 2017) for [N, C, H, W]:
//                 a(x) = normalize_L2(mean_c(x^2) flattened to [N, H*W]);
//                 mean((a(s) - a(t))^2); channel counts may differ
//   attention_kl  attention maps [N, heads, L, L] (rows are probabilities, the
//                 softmax outputs): KL(t || s) per row, averaged over the rows
//                 (MiniLM / TinyBERT); a different head count is compared on
//                 the mean over heads; log p is taken of max(p, 1e-12)
// tests/distill checks every value and gradient against the PyTorch
// transcription in tests/fixtures/make_distill_fixtures.py.
enum class PairLoss { kMse, kL1, kCosine, kAttentionTransfer, kAttentionKl };

struct PairLossSpec {
  PairLoss loss;
  const char* name;  // as written after ':' in a pair ("mse")
  // What the student and teacher values must agree on for the loss to be
  // defined: all of the shape, or the spatial size only (at), or the
  // sequence length only (attention_kl).
  enum class Match { kShape, kSpatial, kAttention } match;
  at::Tensor (*compute)(const at::Tensor& student, const at::Tensor& teacher);
};

const std::vector<PairLossSpec>& pair_losses();
const PairLossSpec& pair_loss_spec(PairLoss loss);
// The spec of a loss by its name; an error listing the names otherwise.
Expected<PairLoss> pair_loss_from_name(const std::string& name);
// "mse, l1, cosine, at, attention_kl"
std::string pair_loss_names();

at::Tensor mse_loss(const at::Tensor& student, const at::Tensor& teacher);
at::Tensor l1_loss(const at::Tensor& student, const at::Tensor& teacher);
at::Tensor cosine_loss(const at::Tensor& student, const at::Tensor& teacher);
// The normalized spatial attention map of [N, C, H, W] activations: [N, H*W].
at::Tensor spatial_attention_map(const at::Tensor& x);
at::Tensor attention_transfer_loss(const at::Tensor& student, const at::Tensor& teacher);
at::Tensor attention_map_kl(const at::Tensor& student, const at::Tensor& teacher);

}  // namespace compress::distill
