// KlObserver: the clipping threshold whose quantized distribution is closest in KL divergence.
#include <algorithm>
#include <cmath>

#include "compress/quant/observer.h"

namespace compress::quant {
namespace {

// Note [KL range search]: zero bins get eps, taken evenly from the nonzero
// ones (counts, not probabilities, as the reference implementations do, so
// eps is negligible against real counts). False when a nonzero bin would
// not stay positive; the candidate is then skipped.
bool smooth(std::vector<double>& d, size_t n) {
  constexpr double kEps = 1e-4;
  size_t zeros = 0;
  for (size_t k = 0; k < n; ++k) zeros += d[k] == 0.0 ? 1 : 0;
  if (zeros == n) return false;
  const double take = kEps * static_cast<double>(zeros) / static_cast<double>(n - zeros);
  for (size_t k = 0; k < n; ++k) {
    if (d[k] == 0.0) {
      d[k] = kEps;
    } else {
      d[k] -= take;
      if (d[k] <= 0.0) return false;
    }
  }
  return true;
}

// KL(p || q) of the first n entries, each normalized to sum 1.
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q, size_t n) {
  double sp = 0.0, sq = 0.0;
  for (size_t k = 0; k < n; ++k) {
    sp += p[k];
    sq += q[k];
  }
  double kl = 0.0;
  for (size_t k = 0; k < n; ++k) {
    const double pk = p[k] / sp, qk = q[k] / sq;
    kl += pk * std::log(pk / qk);
  }
  return kl;
}

}  // namespace

void KlObserver::observe(const float* data, int64_t count) {
  float amax = 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) continue;
    min_ = finite_ == 0 ? v : std::min(min_, v);
    max_ = finite_ == 0 ? v : std::max(max_, v);
    ++finite_;
    amax = std::max(amax, std::fabs(v));
  }
  if (width_ == 0.0 && amax > 0.0f) {
    width_ = static_cast<double>(amax) / kKlFineBins;
    hist_[0] += static_cast<double>(zeros_before_);
  }
  // Grow the reach until amax fits: merging bin pairs is exact.
  while (width_ > 0.0 && static_cast<double>(amax) > width_ * kKlFineBins) {
    for (int k = 0; k < kKlFineBins / 2; ++k) hist_[k] = hist_[2 * k] + hist_[2 * k + 1];
    std::fill(hist_.begin() + kKlFineBins / 2, hist_.end(), 0.0);
    width_ *= 2.0;
  }
  for (int64_t i = 0; i < count; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) {
      ++skipped_;
      continue;
    }
    if (width_ == 0.0) {
      ++zeros_before_;  // every finite value so far is 0
      continue;
    }
    const double bin = std::floor(std::fabs(static_cast<double>(v)) / width_);
    hist_[static_cast<size_t>(std::min(bin, static_cast<double>(kKlFineBins - 1)))] += 1.0;
  }
}

Expected<Range> KlObserver::range() const {
  if (finite_ == 0) return invalid_argument("kl observer saw no finite value ({} non-finite skipped)", skipped_);
  if (width_ == 0.0) return Range{min_, max_};  // all zeros: the scheme's fallback handles it
  const size_t levels = min_ >= 0.0f ? 256 : 128;
  // The 2048 search bins: groups of `merge` fine bins.
  size_t fine_used = kKlFineBins;
  while (fine_used > 0 && hist_[fine_used - 1] == 0.0) --fine_used;
  const size_t merge = (fine_used + kKlBins - 1) / kKlBins;
  const double width = width_ * static_cast<double>(merge);
  std::vector<double> hist(kKlBins, 0.0);
  for (size_t k = 0; k < fine_used; ++k) hist[k / merge] += hist_[k];
  // Note [KL range search]: the first bin (exact zeros after a ReLU, often
  // half of all values) is replaced by its neighbour's count.
  hist[0] = hist[1];
  size_t used = kKlBins;  // bins up to and including the last nonzero one
  while (used > 0 && hist[used - 1] == 0.0) --used;
  if (used <= levels) return Range{min_, max_};  // nothing to clip: every bin is its own level

  std::vector<double> tail(kKlBins + 1, 0.0);  // tail[i] = sum of hist_[i..]
  for (int k = kKlBins - 1; k >= 0; --k) tail[k] = tail[k + 1] + hist[k];
  std::vector<double> p(kKlBins), q(kKlBins);
  double best = INFINITY;
  size_t best_i = used;
  for (size_t i = levels; i <= used; ++i) {
    std::copy(hist.begin(), hist.begin() + static_cast<std::ptrdiff_t>(i), p.begin());
    p[i - 1] += tail[i];  // the clipped values land in the last bin
    const size_t merged = i / levels;
    for (size_t j = 0; j < levels; ++j) {
      const size_t start = j * merged, stop = j + 1 == levels ? i : start + merged;
      double sum = 0.0;
      size_t nonzero = 0;
      for (size_t k = start; k < stop; ++k) {
        sum += hist[k];
        nonzero += hist[k] != 0.0 ? 1 : 0;
      }
      for (size_t k = start; k < stop; ++k) q[k] = hist[k] != 0.0 ? sum / static_cast<double>(nonzero) : 0.0;
    }
    if (!smooth(p, i) || !smooth(q, i)) continue;
    const double kl = kl_divergence(p, q, i);
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  const auto threshold = static_cast<float>(static_cast<double>(best_i) * width);
  return Range{std::max(min_, -threshold), std::min(max_, threshold)};
}

}  // namespace compress::quant
