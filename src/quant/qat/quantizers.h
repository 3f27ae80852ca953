// The learned fake-quantizers of QAT (Note [QAT quantizers], qat_model.h): LSQ, LSQ+, PACT, STE.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "compress/ir/quant_params.h"
#include "compress/quant/qat_pass.h"
#include "compress/torch/trainable_model.h"

namespace compress::quant {

// What one fake_quant node quantizes, with its initial params.
struct QuantizerSpec {
  std::string node;   // the fake_quant node (also the parameters' name prefix)
  std::string layer;  // the layer it serves, for messages
  bool weight = false;  // per output channel (axis 0), symmetric
  int64_t bits = 8;
  ir::QuantParams initial;
};

class Quantizer {
 public:
  explicit Quantizer(QuantizerSpec spec) : spec_(std::move(spec)) {}
  virtual ~Quantizer() = default;
  const QuantizerSpec& spec() const { return spec_; }
  // x_hat: the fake-quantized x (same shape), differentiable as the method says.
  virtual at::Tensor forward(const at::Tensor& x, bool training) = 0;
  // The params the forward pass uses now, as the deployed graph takes them.
  virtual Expected<ir::QuantParams> params() const = 0;
  virtual void freeze_observer() {}
  // After an optimizer step: clamps the learned scale to >= kMinLearnedScale;
  // an error when a learned value is NaN/Inf.
  virtual Status after_step() { return Status::ok(); }

 protected:
  QuantizerSpec spec_;
};

inline constexpr double kMinLearnedScale = 1e-8;

// A quantizer of `method` for `spec`, its parameters registered in `model`
// (named "<node>.scale", "<node>.zero_point", "<node>.alpha").
Expected<std::shared_ptr<Quantizer>> make_quantizer(QatMethod method, QuantizerSpec spec,
                                                    compress::torch::TrainableModel& model, double lr_scale);

}  // namespace compress::quant
