#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "compress/prune/masks.h"
#include "compress/prune/nm_pass.h"
#include "compress/prune/schedule.h"

using namespace compress;
using namespace compress::prune;

TEST_CASE("cubic schedule: endpoints, the (1 - t/T)^3 shape and clamping") {
  CHECK(cubic_sparsity(0.0, 0.8, 0, 10) == Approx(0.0));
  CHECK(cubic_sparsity(0.0, 0.8, 10, 10) == Approx(0.8));
  CHECK(cubic_sparsity(0.0, 0.8, 5, 10) == Approx(0.8 - 0.8 * 0.125));
  CHECK(cubic_sparsity(0.2, 0.8, 2, 4) == Approx(0.8 + (0.2 - 0.8) * 0.125));
  CHECK(cubic_sparsity(0.0, 0.8, 20, 10) == Approx(0.8));
  CHECK(cubic_sparsity(0.0, 0.8, -3, 10) == Approx(0.0));
  CHECK(cubic_sparsity(0.1, 0.8, 3, 0) == 0.8);
  const std::vector<double> steps = iterative_sparsities(0.9, 4);
  REQUIRE(steps.size() == 4);
  for (size_t i = 1; i < steps.size(); ++i) CHECK(steps[i] > steps[i - 1]);
  CHECK(steps.back() == 0.9);
}

TEST_CASE("masks: exact counts, ties to the lower index, prior zeros first") {
  const std::vector<float> flat(10, 1.0f);
  std::vector<uint8_t> m = lowest_k(flat, 4);
  CHECK(std::vector<uint8_t>(m.begin(), m.begin() + 4) == std::vector<uint8_t>(4, 1));
  CHECK(std::vector<uint8_t>(m.begin() + 4, m.end()) == std::vector<uint8_t>(6, 0));

  const std::vector<float> s = {5, 1, 4, 2, 3};
  std::vector<uint8_t> prior = {1, 0, 0, 0, 0};
  m = lowest_k(s, 2, &prior);
  CHECK(m == std::vector<uint8_t>{1, 1, 0, 0, 0});

  // 3 rows x 5 columns at 0.5: round(7.5) = 8 in all, spread 2/3/3 or similar.
  std::vector<float> grid(15);
  for (size_t i = 0; i < grid.size(); ++i) grid[i] = static_cast<float>((i * 7) % 11);
  m = lowest_per_row(grid, 3, 5, 0.5);
  int64_t total = 0;
  for (int r = 0; r < 3; ++r) {
    int64_t row = 0;
    for (int c = 0; c < 5; ++c) row += m[static_cast<size_t>(r * 5 + c)];
    CHECK((row == 2 || row == 3));
    total += row;
  }
  CHECK(total == 8);

  std::vector<float> w = {0.5f, -0.1f, 0.3f, 0.0f, 0.9f, -0.7f, 0.2f, 0.4f};
  m = nm_mask({0.5f, 0.1f, 0.3f, 0.0f, 0.9f, 0.7f, 0.2f, 0.4f}, 1, 8, 2, 4);
  CHECK(m == std::vector<uint8_t>{0, 1, 0, 1, 0, 0, 1, 1});
  CHECK_FALSE(satisfies_nm(w.data(), 1, 8, 2, 4));
  for (size_t i = 0; i < w.size(); ++i) {
    if (m[i]) w[i] = 0.0f;
  }
  CHECK(satisfies_nm(w.data(), 1, 8, 2, 4));
}

TEST_CASE("magnitude_prune_in_place: exact, monotone under a rising ratio, refuses NaN") {
  std::vector<float> w(100);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 1.7f);
  std::vector<float> a = w;
  CHECK(magnitude_prune_in_place(a.data(), 100, 0.3) == 30);
  std::vector<float> b = a;
  CHECK(magnitude_prune_in_place(b.data(), 100, 0.6) == 60);
  for (size_t i = 0; i < w.size(); ++i) {
    if (a[i] == 0.0f) CHECK(b[i] == 0.0f);  // earlier zeros stay zero
    if (b[i] != 0.0f) CHECK(b[i] == w[i]);  // survivors keep their value
  }
  // Every pruned magnitude is <= every kept one.
  float max_pruned = 0.0f, min_kept = 10.0f;
  for (size_t i = 0; i < w.size(); ++i) {
    if (b[i] == 0.0f) max_pruned = std::max(max_pruned, std::fabs(w[i]));
    else min_kept = std::min(min_kept, std::fabs(w[i]));
  }
  CHECK(max_pruned <= min_kept);
  std::vector<float> bad = w;
  bad[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK(magnitude_prune_in_place(bad.data(), 100, 0.5) == -1);
  CHECK(bad[0] == w[0]);
  CHECK(magnitude_prune_in_place(a.data(), 100, 1.5) == -1);
}

TEST_CASE("N:M patterns parse and reject nonsense") {
  CHECK(parse_nm_pattern("2:4").value() == std::make_pair<int64_t, int64_t>(2, 4));
  CHECK(parse_nm_pattern("4:8").value() == std::make_pair<int64_t, int64_t>(4, 8));
  for (const char* bad : {"3:2", "4:4", "0:4", "2-4", "2:", ":4", "a:b", "2:4:8", "-2:4", "2:1000"}) {
    INFO(bad);
    auto r = parse_nm_pattern(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains(bad));
  }
}
