// Adapters: the small trained maps that bring a student value to its teacher's shape for a pair loss.
#pragma once

// Only the distill layer (which links LibTorch) includes this.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compress/distill/losses.h"
#include "compress/support/status.h"

namespace compress::distill {

// Note [Adapters]
// When a student value and its teacher value differ in shape where the loss
// needs them equal (Note [Pair losses]), an adapter maps the student value,
// batch first, in this order:
//   channels   [N, Cs, H, W] -> [N, Ct, H, W]: a 1x1 conv with bias
//   hidden     [N, Ds] or [N, L, Ds] -> ... Dt: a linear with bias
//   spatial    [N, C, Hs, Ws] -> [N, C, Ht, Wt]: adaptive average pooling when
//              the student is larger in both, bilinear interpolation when it
//              is smaller in both (a mix is an error)
// at needs the spatial size only (channels are averaged away), attention_kl
// the sequence length only (heads are averaged when they differ). The
// projections start as PyTorch's default init (uniform in +-1/sqrt(fan_in))
// drawn from the given engine, are trained with the student (Distiller adds
// them to its parameters), and are never part of the student's graph, so the
// saved student has none. A rank change, or a mismatch in any other dim
// (batch-independent sequence length, spatial sizes with a mix of larger and
// smaller), has no adapter: the error says which dims and why.
class Adapter {
 public:
  // student, teacher: full shapes (the batch dim first, its size ignored).
  static Expected<Adapter> create(PairLoss loss, const std::vector<int64_t>& student,
                                  const std::vector<int64_t>& teacher, std::mt19937_64& rng);
  at::Tensor apply(const at::Tensor& student) const;
  bool identity() const { return !weight_.defined() && resize_.empty(); }
  // "1x1 conv 8->16, pool 14x14->7x7", or "none".
  const std::string& description() const { return description_; }
  // The trainable tensors (weight, bias), empty for an identity adapter.
  std::vector<at::Tensor> parameters() const;
  // The parameter tensors are replaced by these (Distiller registers them with the student model,
  // which hands back its own copies); in parameters() order.
  void set_parameters(const std::vector<at::Tensor>& tensors);

 private:
  enum class Projection { kNone, kConv1x1, kLinear };
  Projection projection_ = Projection::kNone;
  at::Tensor weight_, bias_;
  std::vector<int64_t> resize_;  // {H, W}; empty for none
  bool pool_ = false;            // resize by adaptive average pooling (else bilinear)
  std::string description_ = "none";
};

}  // namespace compress::distill
