#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compress/io/cmf.h"
#include "compress/io/npy.h"
#include "compress/ir/verifier.h"
#include "quant_test_util.h"
#include "fashion_data.h"

using namespace compress;
namespace fs = std::filesystem;

namespace {

struct Run {
  int exit_code = -1;
  std::string out;
};

// Runs ctk with stdout captured and stderr discarded.
Run ctk(const std::string& args, const fs::path& dir) {
  const fs::path out = dir / "stdout.txt";
  const std::string cmd = std::string(CTK_PATH) + " " + args + " >" + out.string() + " 2>/dev/null </dev/null";
  const int status = std::system(cmd.c_str());
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("compress_quant_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

const std::string kFixture = test::fashion_cnn_path();
const std::string kCalib = " --calib fashion-mnist:train --mean 0.2860 --std 0.3530 --samples 64 -q";

}  // namespace

TEST_CASE("ctk quantize: int8 and fake-quant .cmf files of the fixture") {
  const fs::path dir = fresh_dir("ok");
  Run r = ctk("quantize " + kFixture + " " + (dir / "int8.cmf").string() + kCalib, dir);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("4 layers quantized (int8)"));
  auto g = io::load_cmf((dir / "int8.cmf").string());
  REQUIRE(g.has_value());
  CHECK(ir::verify(*g).is_ok());
  CHECK(quant_test::count_ops(*g, "qconv2d") == 2);
  CHECK(quant_test::count_ops(*g, "batch_norm") == 0);

  r = ctk("quantize " + kFixture + " " + (dir / "fq.cmf").string() + kCalib + " --fake-quant --observer percentile", dir);
  REQUIRE(r.exit_code == 0);
  auto f = io::load_cmf((dir / "fq.cmf").string());
  REQUIRE(f.has_value());
  CHECK(quant_test::count_ops(*f, "fake_quant") == 10);

  r = ctk("quantize " + kFixture + " " + (dir / "pt.cmf").string() + kCalib + " --weight-granularity per_tensor", dir);
  REQUIRE(r.exit_code == 0);
  auto pt = io::load_cmf((dir / "pt.cmf").string());
  REQUIRE(pt.has_value());
  const ir::Value* w = pt->find_node("conv2")->input(1);
  REQUIRE(w->type().quant != nullptr);
  CHECK(w->type().quant->granularity() == ir::QuantGranularity::kPerTensor);

  // 7-bit weights: codes in [-63, 63] (native int8 on CPUs without VNNI, docs/onednn.md).
  r = ctk("quantize " + kFixture + " " + (dir / "w7.cmf").string() + kCalib + " --weight-bits 7", dir);
  REQUIRE(r.exit_code == 0);
  auto w7 = io::load_cmf((dir / "w7.cmf").string());
  REQUIRE(w7.has_value());
  CHECK(w7->find_node("conv2")->input(1)->type().quant->qmax() == 63);
  fs::remove_all(dir);
}

TEST_CASE("ctk quantize: bad input is an error and writes nothing") {
  const fs::path dir = fresh_dir("bad");
  // A model with nothing to quantize.
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 1, 28, 28}, nullptr}).value();
  g.set_outputs({g.add_node("relu", {x}, {}, "relu").value()->output()});
  REQUIRE(io::save_cmf(g, (dir / "relu.cmf").string()).is_ok());
  CHECK(ctk("quantize " + (dir / "relu.cmf").string() + " " + (dir / "out.cmf").string() + kCalib, dir).exit_code == 1);
  CHECK_FALSE(fs::exists(dir / "out.cmf"));
  CHECK(ctk("quantize " + kFixture + " " + (dir / "out.cmf").string() + kCalib + " --observer entropy", dir).exit_code == 2);
  CHECK(ctk("quantize " + kFixture + " " + (dir / "out.cmf").string() + kCalib + " --weight-granularity per_row", dir)
            .exit_code == 2);
  CHECK(ctk("quantize " + kFixture + " " + (dir / "out.cmf").string() + kCalib + " --weight-bits 4", dir).exit_code ==
        2);  // 8 or 7 (lower: quant.qat)
  CHECK(ctk("quantize " + kFixture + " " + (dir / "out.cmf").string() + " -q", dir).exit_code == 2);  // no --calib
  CHECK(ctk("quantize " + kFixture + " " + (dir / "out.cmf").string() + " --calib npy:/nonexistent.npy -q", dir)
            .exit_code == 1);
  CHECK_FALSE(fs::exists(dir / "out.cmf"));
  fs::remove_all(dir);
}

// A model converted with its batch fixed (a reshape with a constant leading
// dim, as TorchScript's attention leaves them): calibration must run at that
// batch. The default batch (64, so all 16 samples at once) fails with a
// hint; --batch 4 works.
TEST_CASE("ctk quantize --batch: a model whose reshapes fix the batch") {
  const fs::path dir = fresh_dir("batch");
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {4, 8}, nullptr}).value();
  ir::Value* w = g.add_constant("fc.weight", quant_test::random_tensor({8, 8}, 1)).value();
  ir::Value* y = g.add_node("linear", {x, w}, {}, "fc").value()->output();
  ir::Value* r = g.add_node("reshape", {y}, {{"shape", std::vector<int64_t>{4, 2, 4}}}, "split").value()->output();
  ir::Value* back = g.add_node("reshape", {r}, {{"shape", std::vector<int64_t>{4, 8}}}, "merge").value()->output();
  // A layer after the reshapes: calibrating it needs them (the probe computes
  // only what the observed values depend on).
  ir::Value* w2 = g.add_constant("fc2.weight", quant_test::random_tensor({8, 8}, 3)).value();
  g.set_outputs({g.add_node("linear", {back, w2}, {}, "fc2").value()->output()});
  REQUIRE(io::save_cmf(g, (dir / "fixed.cmf").string()).is_ok());
  REQUIRE(io::save_npy(quant_test::random_tensor({16, 8}, 2), (dir / "x.npy").string()).is_ok());
  std::vector<int64_t> labels(16, 0);
  REQUIRE(io::save_npy(ir::Tensor::from_vector(ir::DType::kI64, {16}, labels), (dir / "y.npy").string()).is_ok());
  const std::string model = (dir / "fixed.cmf").string() + " " + (dir / "int8.cmf").string();
  const std::string calib = " --calib npy:" + (dir / "x.npy").string() + "," + (dir / "y.npy").string() + " -q";

  const std::string err = (dir / "stderr.txt").string();
  const int status = std::system((std::string(CTK_PATH) + " quantize " + model + calib + " >/dev/null 2>" + err).c_str());
  CHECK((WIFEXITED(status) ? WEXITSTATUS(status) : -1) == 1);
  std::ifstream in(err);
  std::stringstream message;
  message << in.rdbuf();
  CHECK_THAT(message.str(), Catch::Contains("node 'split' (reshape)") &&
                                Catch::Contains("calibrating: batch of 16 samples from sample 0") &&
                                Catch::Contains("runs with batch 4"));
  CHECK_FALSE(fs::exists(dir / "int8.cmf"));

  Run ok = ctk("quantize " + model + calib + " --batch 4", dir);
  REQUIRE(ok.exit_code == 0);
  CHECK_THAT(ok.out, Catch::Contains("2 layers quantized (int8), 16 calibration samples"));
  auto q = io::load_cmf((dir / "int8.cmf").string());
  REQUIRE(q.has_value());
  CHECK(quant_test::count_ops(*q, "qlinear") == 2);
  CHECK(ctk("quantize " + model + calib + " --batch 0", dir).exit_code == 2);
  fs::remove_all(dir);
}
