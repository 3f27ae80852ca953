// Moving-average and KL-histogram observers against hand-computed ranges, and
// KL and MSE range search on known distributions with outliers.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "compress/pass/options.h"
#include "compress/quant/observer.h"
#include "compress/quant/ptq_pass.h"

using namespace compress;
using namespace compress::quant;

namespace {

Range range_of(Observer& o, const std::vector<float>& v, size_t batch = 4096) {
  for (size_t i = 0; i < v.size(); i += batch) {
    o.observe(v.data() + i, static_cast<int64_t>(std::min(batch, v.size() - i)));
  }
  auto r = o.range();
  REQUIRE(r.has_value());
  return *r;
}

// n samples of N(0, 1) (or Laplace(0, 1) with `laplace`), then `outliers`
// values alternating +-outlier at the end.
std::vector<float> samples(size_t n, bool laplace, int outliers, float outlier, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::exponential_distribution<float> expo(1.0f);
  std::vector<float> v;
  for (size_t i = 0; i < n; ++i) v.push_back(laplace ? (i % 2 ? expo(rng) : -expo(rng)) : normal(rng));
  for (int i = 0; i < outliers; ++i) v.push_back(i % 2 ? outlier : -outlier);
  return v;
}

}  // namespace

TEST_CASE("moving_average observer: EMA of per-batch min and max, hand-computed") {
  MovingAverageObserver o(0.9);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float b1[] = {1.0f, -2.0f, 3.0f};
  const float b2[] = {0.0f, 5.0f};
  const float b3[] = {nan, nan};  // no finite value: the average stays
  const float b4[] = {-12.0f, 1.0f, nan};
  o.observe(b1, 3);  // first batch sets [-2, 3]
  auto r = o.range();
  REQUIRE(r.has_value());
  CHECK(r->min == -2.0f);
  CHECK(r->max == 3.0f);
  o.observe(b2, 2);  // [0.9*-2 + 0.1*0, 0.9*3 + 0.1*5] = [-1.8, 3.2]
  o.observe(b3, 2);
  r = o.range();
  CHECK(r->min == Approx(-1.8).epsilon(1e-6));
  CHECK(r->max == Approx(3.2).epsilon(1e-6));
  o.observe(b4, 3);  // [0.9*-1.8 + 0.1*-12, 0.9*3.2 + 0.1*1] = [-2.82, 2.98]
  r = o.range();
  CHECK(r->min == Approx(-2.82).epsilon(1e-6));
  CHECK(r->max == Approx(2.98).epsilon(1e-6));
  CHECK(o.skipped_count() == 3);
  CHECK(o.finite_count() == 7);

  MovingAverageObserver last(0.0);  // momentum 0: the last batch's range
  last.observe(b1, 3);
  last.observe(b2, 2);
  CHECK(last.range()->min == 0.0f);
  CHECK(last.range()->max == 5.0f);

  CHECK_FALSE(MovingAverageObserver().range().has_value());
  CHECK_FALSE(make_observer("moving_average", {1.0, 99.99}).has_value());
  REQUIRE(make_observer("moving_average").has_value());
  CHECK(make_observer("moving_average").value()->name() == "moving_average");
}

TEST_CASE("kl observer: hand-computed cases without clipping, zeros, no finite value") {
  // Non-negative values that fill at most 255 bins: nothing to clip, the range is [min, max].
  KlObserver few;
  const float a[] = {0.0f, 0.5f, 1.0f, 2.0f};
  few.observe(a, 4);
  CHECK(few.range()->min == 0.0f);
  CHECK(few.range()->max == 2.0f);

  // Zeros seen before the first nonzero value are counted, and the
  // histogram grows when a later batch exceeds its reach.
  KlObserver grow;
  const float zeros[] = {0.0f, 0.0f, 0.0f};
  const float b1[] = {0.25f, -0.5f};
  const float b2[] = {4.0f};
  grow.observe(zeros, 3);
  grow.observe(b1, 2);
  grow.observe(b2, 1);
  CHECK(grow.range()->min == -0.5f);
  CHECK(grow.range()->max == 4.0f);
  CHECK(grow.finite_count() == 6);

  KlObserver all_zero;
  all_zero.observe(zeros, 3);
  CHECK(all_zero.range()->min == 0.0f);
  CHECK(all_zero.range()->max == 0.0f);

  KlObserver none;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float bad[] = {nan, inf};
  none.observe(bad, 2);
  CHECK_FALSE(none.range().has_value());
  CHECK(none.skipped_count() == 2);
}

TEST_CASE("kl observer: uniform data is not clipped") {
  std::vector<float> v;
  for (int i = 0; i < 100000; ++i) v.push_back(static_cast<float>(i % 1000) / 999.0f);
  KlObserver o;
  const Range r = range_of(o, v);
  CHECK(r.min == 0.0f);
  CHECK(r.max >= 0.97f);
  CHECK(r.max <= 1.0f);
}

TEST_CASE("kl observer: Gaussian and Laplace samples with outliers are clipped within a band") {
  for (bool laplace : {false, true}) {
    const std::vector<float> v = samples(200000, laplace, 20, 40.0f, laplace ? 7 : 3);
    KlObserver kl;
    const Range k = range_of(kl, v);
    WARN((laplace ? "laplace" : "gaussian") << " + 20 outliers at +-40: kl [" << k.min << ", " << k.max << "]");
    // Symmetric data: KL's range is [-T, T], T well inside the outliers and
    // beyond the bulk. A NumPy transcription of TensorRT's search on an
    // exact [0, max] histogram of such samples gives T = 7.48 (Gaussian) and
    // 9.90 (Laplace); this histogram's bins differ slightly.
    CHECK(k.min == -k.max);
    if (laplace) {
      CHECK(k.max >= 8.0f);
      CHECK(k.max <= 12.0f);
    } else {
      CHECK(k.max >= 6.0f);
      CHECK(k.max <= 9.0f);
    }
  }
}

TEST_CASE("mse observer: Gaussian samples with two outliers are clipped within a band") {
  // Two outliers in 200000: clipping them to T costs 2 (40 - T)^2 / n, the
  // bulk's rounding error grows with T; the search (a in [0.3, 1]) cannot go
  // below 0.3 * 40 = 12. (With 20 outliers keeping them is cheaper: 38.)
  const std::vector<float> v = samples(200000, false, 2, 40.0f, 3);
  MseObserver mse;
  const Range m = range_of(mse, v);
  WARN("gaussian + 2 outliers at +-40: mse [" << m.min << ", " << m.max << "]");
  CHECK(m.max < 30.0f);
  CHECK(m.max >= 0.3f * 40.0f - 1e-3f);
  CHECK(m.min == Approx(-m.max));
}

TEST_CASE("kl observer: non-negative (ReLU-like) data uses 256 levels and clips outliers") {
  std::vector<float> v = samples(200000, false, 0, 0.0f, 11);
  for (float& x : v) x = std::fabs(x);
  for (int i = 0; i < 10; ++i) v.push_back(30.0f);
  KlObserver kl;
  const Range k = range_of(kl, v);
  WARN("half-normal: kl [" << k.min << ", " << k.max << "]");
  CHECK(k.min >= 0.0f);
  CHECK(k.min < 1e-3f);
  CHECK(k.max >= 3.0f);
  CHECK(k.max <= 8.0f);
}

TEST_CASE("quant.ptq options: every observer name, momentum and percentile parse, bad values name the key") {
  for (const std::string& name : observer_names()) {
    auto o = PtqPass::parse_options(pass::PassOptions::from_pairs({{"observer", name}}, "test").value());
    REQUIRE(o.has_value());
    CHECK(o->observer == name);
  }
  auto m = PtqPass::parse_options(
      pass::PassOptions::from_pairs({{"observer", "moving_average"}, {"momentum", "0.5"}}, "test").value());
  REQUIRE(m.has_value());
  CHECK(m->momentum == 0.5);
  auto p = PtqPass::parse_options(pass::PassOptions::from_pairs({{"percentile", "99.9"}}, "test").value());
  REQUIRE(p.has_value());
  CHECK(p->percentile == 99.9);
  CHECK_FALSE(PtqPass::parse_options(pass::PassOptions::from_pairs({{"percentile", "50"}}, "test").value()).has_value());
  auto bad = PtqPass::parse_options(pass::PassOptions::from_pairs({{"momentum", "1"}}, "test").value());
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("momentum"));
  auto unknown = PtqPass::parse_options(pass::PassOptions::from_pairs({{"observer", "entropy"}}, "test").value());
  REQUIRE_FALSE(unknown.has_value());
  CHECK_THAT(unknown.status().message(), Catch::Contains("kl"));
}
