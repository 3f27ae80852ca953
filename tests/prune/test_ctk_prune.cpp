#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compress/analysis/model_stats.h"
#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "prune_test_util.h"

using namespace compress;
using namespace compress::prune_test;
namespace fs = std::filesystem;

namespace {

struct Run {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Run ctk(const std::string& args, const fs::path& dir) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd =
      std::string(CTK_PATH) + " " + args + " >" + out.string() + " 2>" + err.string() + " </dev/null";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("compress_prune_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("ctk prune: magnitude and 2:4 write sparse .cmf files and print the per-layer table") {
  const fs::path dir = fresh_dir("ok");
  const std::string out = (dir / "p.cmf").string();
  Run r = ctk("prune " + test::fashion_cnn_path() + " " + out + " --method magnitude --ratio 0.6 --exclude conv1 -q", dir);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("fc1") && Catch::Contains("60.00%"));
  auto g = io::load_cmf(out);
  REQUIRE(g.has_value());
  CHECK(ir::verify(*g).is_ok());
  CHECK(zeros(weight_of(*g, "fc1")) == std::llround(0.6 * 200704));
  CHECK(zeros(weight_of(*g, "conv1")) == 0);

  r = ctk("prune " + test::fashion_cnn_path() + " " + out + " --method nm --pattern 4:8 -q", dir);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("skipped"));
  g = io::load_cmf(out);
  REQUIRE(g.has_value());
  CHECK(g->find_node("fc1")->input(1)->constant().sparse_layout()->format == ir::SparseFormat::kNM);
  fs::remove_all(dir);
}

TEST_CASE("ctk prune --method structured: a FLOPs target with kept channels rounded") {
  const fs::path dir = fresh_dir("structured");
  const std::string out = (dir / "s.cmf").string();
  const std::string base = "prune " + test::fashion_cnn_path() + " " + out + " --method structured";
  const Run r = ctk(base + " --target-flops 0.5 --round-to 4 -q", dir);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("prune.structured"));
  auto g = io::load_cmf(out);
  REQUIRE(g.has_value());
  CHECK(ir::verify(*g).is_ok());
  const ir::Graph original = test::fashion_cnn();
  const double kept = static_cast<double>(analysis::compute_model_cost(*g).flops) /
                      static_cast<double>(analysis::compute_model_cost(original).flops);
  CHECK(kept <= 0.5);
  CHECK(kept > 0.3);  // the smallest prefix that reaches the target, not everything
  for (const char* layer : {"conv1", "conv2", "fc1"}) {
    INFO(layer);
    const int64_t channels = g->find_node(layer)->input(1)->shape()[0];
    CHECK(channels % 4 == 0);
    CHECK(channels < original.find_node(layer)->input(1)->shape()[0]);
  }
  // Errors name the flags, not the pass's recipe keys.
  const std::vector<std::pair<std::string, std::string>> bad_args = {{" --target-flops 0.5 --ratio 0.3", "--ratio"},
                                                                     {"", "--target-flops"},
                                                                     {" --target-params 1.5", "--target-params: "},
                                                                     {" --ratio 0.3 --min-channels 0", "--min-channels: "}};
  for (const auto& [bad, says] : bad_args) {
    INFO(bad);
    const Run b = ctk(base + bad + " -q", dir);
    CHECK(b.exit_code == 2);
    CHECK_THAT(b.err, Catch::Contains(says) && !Catch::Contains("option '"));
  }
  CHECK(ctk("prune " + test::fashion_cnn_path() + " " + out + ".m --method magnitude --ratio 0.5 --round-to 4 -q", dir)
            .exit_code == 2);
  fs::remove_all(dir);
}

TEST_CASE("ctk prune: bad arguments are usage errors that name the problem, and write nothing") {
  const fs::path dir = fresh_dir("bad");
  const std::string out = (dir / "p.cmf").string();
  const std::string base = "prune " + test::fashion_cnn_path() + " " + out;
  struct Bad {
    std::string args;
    std::string says;
  };
  for (const Bad& bad : std::vector<Bad>{{" --method magnitude --ratio 1.0", "ratio"},
                                         {" --method magnitude --ratio .nan", "ratio"},
                                         {" --method nm --pattern 3:2", "3:2"},
                                         {" --method lottery --ratio 0.5", "lottery"}}) {
    INFO(bad.args);
    const Run r = ctk(base + bad.args, dir);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(bad.says));
    CHECK_THAT(r.err, !Catch::Contains("ctk prune: ctk prune"));
  }
  Run r = ctk(base + " --method magnitude --ratio 0.5 --layer 'layer9.*=0.3'", dir);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("layer9.*"));
  r = ctk(base + " --method magnitude --ratio 0.5 --criterion wanda", dir);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("calibration"));
  CHECK_FALSE(fs::exists(out));
  fs::remove_all(dir);
}
