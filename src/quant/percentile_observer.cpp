// PercentileObserver: nearest-rank percentiles of the finite values seen.
#include <algorithm>
#include <cmath>

#include "compress/quant/observer.h"

namespace compress::quant {

void PercentileObserver::observe(const float* data, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (std::isfinite(data[i])) {
      values_.push_back(data[i]);
    } else {
      ++skipped_;
    }
  }
  finite_ = static_cast<int64_t>(values_.size());
}

Expected<Range> PercentileObserver::range() const {
  if (values_.empty()) return invalid_argument("percentile observer saw no finite value ({} non-finite skipped)", skipped_);
  if (!(percentile_ > 50.0 && percentile_ <= 100.0)) {
    return invalid_argument("percentile {} must be in (50, 100]", percentile_);
  }
  const auto n = static_cast<int64_t>(values_.size());
  auto rank = [n](double p) {
    const auto r = static_cast<int64_t>(std::ceil(p / 100.0 * static_cast<double>(n))) - 1;
    return std::clamp<int64_t>(r, 0, n - 1);
  };
  // nth_element on a copy: range() is const and may be asked twice.
  std::vector<float> v = values_;
  const int64_t hi = rank(percentile_);
  const int64_t lo = rank(100.0 - percentile_);
  std::nth_element(v.begin(), v.begin() + hi, v.end());
  const float max = v[hi];
  std::nth_element(v.begin(), v.begin() + lo, v.begin() + hi + 1);
  return Range{v[lo], max};
}

}  // namespace compress::quant
