// Hundreds of mutated .cmf, .npy, IDX and recipe files through ctk: no signal, no hang, exit 0/1/2, no file left behind.
//
// The fuzzers (tests/fuzz/) search the readers in-process; this test holds
// the whole command, as a user runs it, to the rule for bad input: a clear
// exit code, never a crash or a hang, and no output file written by a run
// that failed. Mutations are deterministic (a fixed seed), so a failure
// reproduces; its input is kept under the build folder for the report.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compress/io/cmf.h"
#include "compress/io/npy.h"
#include "compress/ir/sparse_layout.h"
#include "ctk_runner.h"
#include "fashion_data.h"

using namespace compress;
using namespace compress::testing;

namespace {

std::string read_bytes(const std::string& path) { return read_text(path); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

// One random edit of the kinds that break readers: bit flips, boundary
// values written over 1, 2, 4 or 8 bytes (sizes and offsets live there),
// truncation, insertion, a duplicated or deleted run of bytes.
std::string mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    switch (rng() % 7) {
      case 0:
        for (int k = 0; k < 1 + static_cast<int>(rng() % 8); ++k) s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1: {
        static const uint64_t kValues[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000,
                                           0xffffffff, 0x7fffffffffffffffULL, 0xffffffffffffffffULL};
        const uint64_t v = kValues[rng() % (sizeof kValues / sizeof kValues[0])];
        const size_t width = size_t{1} << (rng() % 4), at = pick(s.size());
        for (size_t b = 0; b < width && at + b < s.size(); ++b) s[at + b] = static_cast<char>((v >> (8 * b)) & 0xff);
        break;
      }
      case 2: s.resize(pick(s.size())); break;
      case 3: s.insert(pick(s.size() + 1), std::string(1 + pick(16), static_cast<char>(rng()))); break;
      case 4: {
        const size_t at = pick(s.size()), n = std::min<size_t>(1 + pick(64), s.size() - at);
        s.insert(at, s.substr(at, n));
        break;
      }
      case 5: {
        const size_t at = pick(s.size());
        s.erase(at, 1 + pick(32));
        break;
      }
      default: s[pick(s.size())] = static_cast<char>(rng()); break;
    }
  }
  return s;
}

// Text edits for recipes: characters, and whole lines dropped or doubled.
std::string mutate_text(const std::string& text, std::mt19937_64& rng) {
  if (rng() % 3 != 0) return mutate(text, rng);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) lines.push_back(text.substr(start, nl - start));
  if (lines.empty()) return text;
  const size_t at = static_cast<size_t>(rng() % lines.size());
  if (rng() % 2) lines.erase(lines.begin() + static_cast<long>(at));
  else lines.insert(lines.begin() + static_cast<long>(at), lines[at]);
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

struct Stats {
  int runs = 0, ok = 0, failed = 0;
};

// Runs one command on one mutant and checks the rule; `output` must not
// exist after a failed run.
void check_run(const std::vector<std::string>& args, const std::string& output, const std::string& keep_as,
               const std::string& mutant, Stats& stats) {
  if (!output.empty()) fs::remove(output);
  const Run r = ctk(args, 60);
  ++stats.runs;
  const bool clean_exit = r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 2;
  const bool left_file = r.exit_code != 0 && !output.empty() && fs::exists(output);
  if (!clean_exit || left_file) {
    // Keep the input that broke the rule, to reproduce it.
    write_bytes(std::string(COMPRESS_TEST_BINARY_DIR) + "/" + keep_as, mutant);
  }
  INFO("ctk exit " << r.exit_code << " (124: hang; 128+N or -1: signal N); input kept as " << keep_as
                   << "\nstderr: " << r.err.substr(0, 2000));
  REQUIRE(clean_exit);
  REQUIRE_FALSE(left_file);
  if (r.exit_code == 0) ++stats.ok;
  else ++stats.failed;
  // A failure says which file it was about (the message names it).
  if (r.exit_code == 1) CHECK_FALSE(r.err.empty());
}

// A small model with dense, csr and mask weights and every section a reader
// walks: inputs, constants, nodes with attributes, outputs.
std::string seed_model(const TempDir& dir) {
  ir::Graph g = test::fashion_cnn();
  int k = 0;
  for (ir::Node* n : g.nodes()) {
    if (n->op() != "conv2d" && n->op() != "linear") continue;
    ir::Value* w = n->input(1);
    const ir::Tensor dense = w->constant();
    w->set_constant(k++ % 2 == 0 ? ir::to_csr_layout(dense).value() : ir::to_mask_layout(dense).value());
  }
  const std::string path = dir.file("seed.cmf");
  REQUIRE(io::save_cmf(g, path).is_ok());
  return path;
}

// 240 runs: each ctk start costs ~0.5 s (LibTorch's static initialisation),
// so the suite stays within its time.
constexpr int kCmfMutants = 80, kNpyMutants = 50, kIdxMutants = 30, kRecipeMutants = 80;

}  // namespace

TEST_CASE("mutated .cmf, .npy, IDX and recipe files end in exit 0, 1 or 2 and leave no file", "[cli][mutation][slow]") {
  TempDir dir;
  std::mt19937_64 rng(20261202);
  const std::string model = seed_model(dir);
  const std::string model_bytes = read_bytes(model);
  const std::string x = dir.file("x.npy");
  REQUIRE(io::save_npy(test::fashion_data("test", 4)->batch(0, 4).value().inputs, x).is_ok());
  const std::string x_bytes = read_bytes(x);
  const std::string out = dir.file("out.npy");

  SECTION(".cmf through inspect and infer") {
    Stats s;
    for (int i = 0; i < kCmfMutants; ++i) {
      const std::string m = mutate(model_bytes, rng), path = dir.file("m.cmf");
      write_bytes(path, m);
      if (i % 2 == 0) {
        check_run({"--quiet", "inspect", path, "--json"}, "", "mutant-failure.cmf", m, s);
      } else {
        check_run({"--quiet", "infer", path, "--input", x, "--output", out}, out, "mutant-failure.cmf", m, s);
      }
    }
    INFO(s.ok << " of " << s.runs << " runs succeeded");
    CHECK(s.failed > s.runs / 2);  // the mutations really broke most files
  }
  SECTION(".npy through infer and eval") {
    Stats s;
    for (int i = 0; i < kNpyMutants; ++i) {
      const std::string m = mutate(x_bytes, rng), path = dir.file("m.npy");
      write_bytes(path, m);
      if (i % 2 == 0) {
        check_run({"--quiet", "infer", model, "--input", path, "--output", out}, out, "mutant-failure.npy", m, s);
      } else {
        check_run({"--quiet", "eval", model, "--data", "npy:" + path}, "", "mutant-failure.npy", m, s);
      }
    }
    CHECK(s.failed > 0);
  }
  SECTION("IDX (plain and gzip) through eval") {
    Stats s;
    const std::string images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const std::string labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    // 64 images as a plain IDX file, and the labels file gzip'd as shipped.
    std::string plain("\x00\x00\x08\x03\x00\x00\x00\x40\x00\x00\x00\x1c\x00\x00\x00\x1c", 16);
    std::mt19937 pixels(7);
    for (int i = 0; i < 64 * 28 * 28; ++i) plain.push_back(static_cast<char>(pixels() & 0xff));
    const std::string label_gz = read_bytes(labels);
    for (int i = 0; i < kIdxMutants; ++i) {
      const bool gz = i % 3 == 2;
      const std::string m = mutate(gz ? label_gz : plain, rng), path = dir.file(gz ? "m.idx.gz" : "m.idx");
      write_bytes(path, m);
      const std::string spec = gz ? "idx:" + images + "," + path : "idx:" + path;
      check_run({"--quiet", "eval", model, "--data", spec, "--limit", "64"}, "", gz ? "mutant-failure.idx.gz"
                                                                                     : "mutant-failure.idx",
                m, s);
    }
    CHECK(s.failed > 0);
  }
  SECTION("recipes through run --check") {
    Stats s;
    const std::string recipe_text =
        "model: " + model + "\noutput: " + dir.file("o.cmf") +
        "\nseed: 1\nthreads: 2\ndata:\n  calibration: {spec: 'fashion-mnist:train', mean: 0.286, std: 0.353, "
        "samples: 16}\n  evaluation: {spec: 'npy:" + x + "', samples: 4}\nstages:\n  - transforms.fold_batch_norm\n"
        "  - prune.magnitude: {ratio: 0.5, format: mask}\n  - quant.ptq: {samples: 16, observer: percentile}\n"
        "report: {out: " + dir.file("rep") + ", batch_sizes: [1], min_time: 0}\n";
    for (int i = 0; i < kRecipeMutants; ++i) {
      const std::string m = mutate_text(recipe_text, rng), path = dir.file("m.yaml");
      write_bytes(path, m);
      check_run({"--quiet", "run", path, "--check"}, dir.file("o.cmf"), "mutant-failure.yaml", m, s);
      REQUIRE_FALSE(fs::exists(dir.file("o.cmf")));  // --check never writes
    }
    CHECK(s.failed > 0);
  }
}
