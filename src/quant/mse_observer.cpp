// MseObserver: the clipping range with the smallest u8 quantization error.
#include <algorithm>
#include <cmath>

#include "compress/quant/observer.h"

namespace compress::quant {
namespace {

// Mean squared error of u8 asymmetric fake quantization of `v` over [lo, hi].
double quantization_mse(const std::vector<float>& v, size_t stride, double lo, double hi) {
  const double scale = (hi - lo) / 255.0;
  const double zp = std::clamp(std::nearbyint(-lo / scale), 0.0, 255.0);
  double sum = 0.0;
  size_t n = 0;
  for (size_t i = 0; i < v.size(); i += stride, ++n) {
    const double q = std::clamp(std::nearbyint(v[i] / scale) + zp, 0.0, 255.0);
    const double e = (q - zp) * scale - v[i];
    sum += e * e;
  }
  return sum / static_cast<double>(std::max<size_t>(n, 1));
}

}  // namespace

void MseObserver::observe(const float* data, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) {
      ++skipped_;
      continue;
    }
    min_ = values_.empty() ? v : std::min(min_, v);
    max_ = values_.empty() ? v : std::max(max_, v);
    values_.push_back(v);
  }
  finite_ = static_cast<int64_t>(values_.size());
}

Expected<Range> MseObserver::range() const {
  if (values_.empty()) return invalid_argument("mse observer saw no finite value ({} non-finite skipped)", skipped_);
  const double lo = std::min(min_, 0.0f), hi = std::max(max_, 0.0f);
  if (hi - lo == 0.0) return Range{min_, max_};  // constant: the scheme's fallback handles it
  const size_t stride = std::max<size_t>(1, values_.size() >> 20);
  double best_a = 1.0;
  double best = quantization_mse(values_, stride, lo, hi);
  for (int step = 1; step <= 70; ++step) {
    const double a = 1.0 - 0.01 * step;
    const double mse = quantization_mse(values_, stride, a * lo, a * hi);
    if (mse < best) {
      best = mse;
      best_a = a;
    }
  }
  return Range{static_cast<float>(best_a * lo), static_cast<float>(best_a * hi)};
}

}  // namespace compress::quant
