// LSQ / LSQ+ / PACT / STE quantizers over LibTorch's fake-quantize kernels.
#include "quantizers.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "compress/support/logging.h"

namespace compress::quant {
namespace {

at::Tensor float_tensor(const std::vector<float>& v) {
  return at::tensor(at::ArrayRef<float>(v.data(), v.size()), at::TensorOptions().dtype(at::kFloat));
}

std::vector<float> to_floats(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU).to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int32_t> initial_zero_points(const ir::QuantParams& p) {
  std::vector<int32_t> z = p.zero_points();
  if (z.empty()) z.assign(p.scales().size(), 0);
  return z;
}

// The params a forward pass with these scales and (rounded) zero points uses.
Expected<ir::QuantParams> params_like(const QuantizerSpec& spec, std::vector<float> scales,
                                      std::vector<int32_t> zero_points) {
  ir::QuantParams::Spec s;
  s.storage = spec.initial.storage();
  s.granularity = spec.initial.granularity();
  s.axis = spec.initial.axis();
  s.scales = std::move(scales);
  s.zero_points = std::move(zero_points);
  s.qmin = spec.initial.qmin();
  s.qmax = spec.initial.qmax();
  Expected<ir::QuantParams> p = ir::QuantParams::create(std::move(s));
  if (!p.has_value()) {
    return invalid_argument("quant.qat: the learned params of '{}' (layer '{}') are invalid: {}", spec.node, spec.layer,
                            p.status().message());
  }
  return p;
}

// Rounds and clamps learned zero points as LibTorch's learnable kernels do.
std::vector<int32_t> rounded_zero_points(const at::Tensor& zp, int64_t qmin, int64_t qmax) {
  std::vector<int32_t> out;
  for (float z : to_floats(zp)) {
    const double r = std::nearbyint(static_cast<double>(z));
    out.push_back(static_cast<int32_t>(std::clamp(r, static_cast<double>(qmin), static_cast<double>(qmax))));
  }
  return out;
}

Status check_finite(const at::Tensor& t, const QuantizerSpec& spec, const char* what) {
  if (at::isfinite(t.detach()).all().item<bool>()) return Status::ok();
  return invalid_argument("quant.qat: the {} of quantizer '{}' (layer '{}') went to NaN or Inf (the run diverged; "
                          "lower lr or scale_lr)",
                          what, spec.node, spec.layer);
}

// Elements per scale: the N of LSQ's gradient scale 1 / sqrt(N * Qp).
double elements_per_scale(const at::Tensor& x, bool per_channel) {
  if (per_channel) return static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(1, x.size(0)));
  // Activations: features per sample (the batch dim does not count).
  return x.dim() > 0 ? static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(1, x.size(0)))
                     : 1.0;
}

class LsqQuantizer : public Quantizer {
 public:
  LsqQuantizer(QuantizerSpec spec, at::Tensor scale, at::Tensor zero_point, bool learn_zero_point)
      : Quantizer(std::move(spec)), scale_(std::move(scale)), zero_point_(std::move(zero_point)),
        learn_zero_point_(learn_zero_point) {}

  at::Tensor forward(const at::Tensor& x, bool /*training*/) override {
    const ir::QuantParams& p = spec_.initial;
    const double qp = static_cast<double>(p.qmax() > 0 ? p.qmax() : 1);
    const bool per_channel = spec_.weight;
    const double grad_factor = 1.0 / std::sqrt(elements_per_scale(x, per_channel) * qp);
    if (per_channel) {
      return at::_fake_quantize_learnable_per_channel_affine(x, scale_, zero_point_, 0, p.qmin(), p.qmax(),
                                                             grad_factor);
    }
    return at::_fake_quantize_learnable_per_tensor_affine(x, scale_, zero_point_, p.qmin(), p.qmax(), grad_factor);
  }

  Expected<ir::QuantParams> params() const override {
    return params_like(spec_, to_floats(scale_), rounded_zero_points(zero_point_, spec_.initial.qmin(),
                                                                     spec_.initial.qmax()));
  }

  Status after_step() override {
    COMPRESS_RETURN_IF_ERROR(check_finite(scale_, spec_, "step size"));
    if (learn_zero_point_) COMPRESS_RETURN_IF_ERROR(check_finite(zero_point_, spec_, "zero point"));
    at::NoGradGuard no_grad;
    scale_.clamp_min_(kMinLearnedScale);
    return Status::ok();
  }

 private:
  at::Tensor scale_;
  at::Tensor zero_point_;  // float, as the learnable kernels take it
  bool learn_zero_point_;
};

// PACT on a non-negative activation: y = min(x, alpha) (gradient 1 to alpha
// where x > alpha), then fake-quantized on [0, alpha] with step alpha / qmax
// (a straight-through rounding; alpha's gradient is the clip's, as in the paper).
class PactQuantizer : public Quantizer {
 public:
  PactQuantizer(QuantizerSpec spec, at::Tensor alpha) : Quantizer(std::move(spec)), alpha_(std::move(alpha)) {}

  at::Tensor forward(const at::Tensor& x, bool /*training*/) override {
    const at::Tensor clipped = x - at::relu(x - alpha_);
    const at::Tensor step = (alpha_ / static_cast<float>(spec_.initial.qmax())).detach();
    return at::fake_quantize_per_tensor_affine(clipped, step, at::zeros({1}, at::kInt), spec_.initial.qmin(),
                                               spec_.initial.qmax());
  }

  Expected<ir::QuantParams> params() const override {
    // The same f32 division as forward's step.
    const at::Tensor step = alpha_.detach() / static_cast<float>(spec_.initial.qmax());
    return params_like(spec_, to_floats(step), {0});
  }

  Status after_step() override {
    COMPRESS_RETURN_IF_ERROR(check_finite(alpha_, spec_, "clip alpha"));
    at::NoGradGuard no_grad;
    alpha_.clamp_min_(kMinLearnedScale * static_cast<double>(spec_.initial.qmax()));
    return Status::ok();
  }

 private:
  at::Tensor alpha_;
};

// Fixed params with a straight-through rounding; until frozen, an observer
// moves them: activations track a moving min/max (PyTorch's averaging
// constant 0.01), weights take max |w| / Qp per channel of every step's weight.
class SteQuantizer : public Quantizer {
 public:
  explicit SteQuantizer(QuantizerSpec spec) : Quantizer(std::move(spec)) {
    scales_ = spec_.initial.scales();
    zero_points_ = initial_zero_points(spec_.initial);
    const float lo = (static_cast<float>(spec_.initial.qmin()) - zero_points_[0]) * scales_[0];
    const float hi = (static_cast<float>(spec_.initial.qmax()) - zero_points_[0]) * scales_[0];
    min_ = lo;
    max_ = hi;
  }

  at::Tensor forward(const at::Tensor& x, bool training) override {
    if (training && !frozen_) observe(x);
    const ir::QuantParams& p = spec_.initial;
    if (spec_.weight) {
      return at::fake_quantize_per_channel_affine(x, float_tensor(scales_),
                                                  at::tensor(at::ArrayRef<int32_t>(zero_points_), at::kInt), 0,
                                                  p.qmin(), p.qmax());
    }
    return at::fake_quantize_per_tensor_affine(x, float_tensor(scales_),
                                               at::tensor(at::ArrayRef<int32_t>(zero_points_), at::kInt), p.qmin(),
                                               p.qmax());
  }

  Expected<ir::QuantParams> params() const override { return params_like(spec_, scales_, zero_points_); }
  void freeze_observer() override { frozen_ = true; }

 private:
  void observe(const at::Tensor& x) {
    const ir::QuantParams& p = spec_.initial;
    const at::Tensor d = x.detach();
    if (spec_.weight) {
      const at::Tensor amax = d.abs().reshape({d.size(0), -1}).amax(1);
      const std::vector<float> m = to_floats(amax);
      for (size_t c = 0; c < m.size(); ++c) {
        const float s = m[c] / static_cast<float>(p.qmax());
        if (s > 0 && std::isfinite(s)) scales_[c] = s;
      }
      return;
    }
    const float lo = d.min().item<float>(), hi = d.max().item<float>();
    if (!std::isfinite(lo) || !std::isfinite(hi)) return;
    min_ += 0.01f * (lo - min_);
    max_ += 0.01f * (hi - max_);
    const float a = std::min(min_, 0.0f), b = std::max(max_, 0.0f);
    const float s = (b - a) / static_cast<float>(p.qmax() - p.qmin());
    if (!(s > 0) || !std::isfinite(s)) return;
    scales_[0] = s;
    zero_points_[0] = static_cast<int32_t>(std::clamp(std::nearbyint(static_cast<double>(p.qmin()) - a / s),
                                                      static_cast<double>(p.qmin()), static_cast<double>(p.qmax())));
  }

  std::vector<float> scales_;
  std::vector<int32_t> zero_points_;
  float min_ = 0.0f, max_ = 0.0f;
  bool frozen_ = false;
};

}  // namespace

Expected<std::shared_ptr<Quantizer>> make_quantizer(QatMethod method, QuantizerSpec spec,
                                                    compress::torch::TrainableModel& model, double lr_scale) {
  const ir::QuantParams& p = spec.initial;
  if (method == QatMethod::kSte) return std::shared_ptr<Quantizer>(std::make_shared<SteQuantizer>(std::move(spec)));
  const std::vector<int32_t> zp = initial_zero_points(p);
  if (method == QatMethod::kPact && !spec.weight && zp[0] == 0 && p.qmin() == 0) {
    const float alpha = p.scales()[0] * static_cast<float>(p.qmax());
    COMPRESS_ASSIGN_OR_RETURN(at::Tensor a, model.add_parameter(spec.node + ".alpha", float_tensor({alpha}), lr_scale));
    return std::shared_ptr<Quantizer>(std::make_shared<PactQuantizer>(std::move(spec), a));
  }
  if (method == QatMethod::kPact && !spec.weight) {
    log_info("quant.qat: pact: '{}' is not a non-negative activation (zero point {}); it learns its step by lsq",
             spec.node, zp[0]);
  }
  COMPRESS_ASSIGN_OR_RETURN(at::Tensor scale, model.add_parameter(spec.node + ".scale", float_tensor(p.scales()), lr_scale));
  std::vector<float> zf(zp.begin(), zp.end());
  const bool learn_zp = method == QatMethod::kLsqPlus && !spec.weight;
  at::Tensor zero_point = float_tensor(zf);
  if (learn_zp) {
    COMPRESS_ASSIGN_OR_RETURN(zero_point, model.add_parameter(spec.node + ".zero_point", zero_point, lr_scale));
  }
  return std::shared_ptr<Quantizer>(std::make_shared<LsqQuantizer>(std::move(spec), scale, zero_point, learn_zp));
}

}  // namespace compress::quant
