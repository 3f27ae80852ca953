// ctk given what a careless or hostile user gives it: FIFOs, devices, inputs as outputs, nonsense numbers, names that are not text.
//
// Each case is a defect a probe of ctk found (issue: "silent wrong results,
// a crash, hangs and clobbered files"); the rule each time is a clear message
// naming the file, key or flag, exit 2 for wrong usage and 1 for a failed
// run, and no crash, hang, partial file, clobbered output or replaced input.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "compress/io/cmf.h"
#include "compress/io/npy.h"
#include "ctk_runner.h"
#include "fashion_data.h"

using namespace compress;
using namespace compress::testing;

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

std::string copy_fixture(const TempDir& dir, const std::string& name) {
  const std::string path = dir.file(name);
  fs::copy_file(test::fashion_cnn_path(), path, fs::copy_options::overwrite_existing);
  return path;
}

// 8 test images as .npy.
std::string images_npy(const TempDir& dir, const std::string& name) {
  const std::string path = dir.file(name);
  REQUIRE(io::save_npy(test::fashion_data("test", 8)->batch(0, 8).value().inputs, path).is_ok());
  return path;
}

void check_fails(const Run& r, int code, const std::string& message) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == code);
  CHECK_THAT(r.err, Catch::Contains(message));
}

}  // namespace

TEST_CASE("a thread count libgomp cannot run is a usage error, not a crash", "[cli][hostile]") {
  for (const char* threads : {"100000", "40000", "1025"}) {
    Run r = ctk({"--threads", threads, "eval", test::fashion_cnn_path(), "--data", "fashion-mnist:test", "--limit",
                 "10"});
    check_fails(r, 2, "bad --threads");
  }
  Run ok = ctk({"--quiet", "--threads", "1024", "eval", test::fashion_cnn_path(), "--data", "fashion-mnist:test",
                "--limit", "16"});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
}

TEST_CASE("FIFOs and devices as inputs end at once with a clear error", "[cli][hostile]") {
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string model = test::fashion_cnn_path();
  check_fails(ctk({"run", fifo}, 30), 1, "FIFO");
  check_fails(ctk({"eval", model, "--data", "idx:" + fifo}, 30), 1, "FIFO");
  check_fails(ctk({"eval", model, "--data", "idx:/dev/zero"}, 30), 1, "character device");
  check_fails(ctk({"eval", model, "--data", "npy:" + fifo}, 30), 1, "FIFO");
  check_fails(ctk({"inspect", fifo}, 30), 1, "FIFO");
  check_fails(ctk({"inspect", "/dev/zero"}, 30), 1, "character device");
#ifdef COMPRESS_HAVE_TORCH
  const std::string fifo_pt = dir.file("model.pt");
  REQUIRE(::mkfifo(fifo_pt.c_str(), 0600) == 0);
  check_fails(ctk({"inspect", fifo_pt, "--input-shape", "1,1,28,28"}, 30), 1, "FIFO");
#endif
  // A directory and a symlink loop say what they are.
  check_fails(ctk({"run", dir.file("")}, 30), 1, "directory");
  const std::string loop_a = dir.file("loop_a"), loop_b = dir.file("loop_b");
  fs::create_symlink(loop_b, loop_a);
  fs::create_symlink(loop_a, loop_b);
  check_fails(ctk({"inspect", loop_a}), 1, "symbolic links");
}

TEST_CASE("an IDX file declaring more data than the limit is refused before reading it", "[cli][hostile]") {
  TempDir dir;
  // 60000 x 2000 x 2000 u8 images declared, 16 bytes present.
  const std::string idx = dir.file("big.idx");
  write_text(idx, std::string("\x00\x00\x08\x03\x00\x00\xea\x60\x00\x00\x07\xd0\x00\x00\x07\xd0", 16));
  const std::string gz = dir.file("big.idx.gz");
  REQUIRE(std::system(("gzip -c " + quoted(idx) + " > " + quoted(gz)).c_str()) == 0);
  for (const std::string& path : {idx, gz}) {
    Run r = ctk({"eval", test::fashion_cnn_path(), "--data", "idx:" + path}, 60);
    INFO(r.err);
    CHECK(r.exit_code == 1);
    if (path == idx) {
      CHECK_THAT(r.err, Catch::Contains("need"));  // a plain file's size is known: it is too short
    } else {
      CHECK_THAT(r.err, Catch::Contains("COMPRESS_MAX_DATASET_BYTES"));
    }
  }
}

TEST_CASE("a failed or refused run never clobbers its output or replaces its input", "[cli][hostile]") {
  TempDir dir;
  const std::string model = copy_fixture(dir, "m.cmf");
  const std::string model_bytes = read_text(model);
  const std::string x = images_npy(dir, "x.npy");
  const std::string x_bytes = read_text(x);

  SECTION("a report folder that is a file: refused before the stages, also by --check") {
    write_text(dir.file("taken"), "a file");
    write_text(dir.file("out.cmf"), "old output");
    const std::string recipe = dir.file("r.yaml");
    write_text(recipe, "model: m.cmf\noutput: out.cmf\nstages: [transforms.fold_batch_norm]\nreport: {out: taken}\n");
    check_fails(ctk({"run", recipe}), 1, "report.out");
    check_fails(ctk({"run", recipe, "--check"}), 1, "report.out");
    CHECK(read_text(dir.file("out.cmf")) == "old output");
  }
  SECTION("outputs that are inputs, by name or through a link") {
    fs::create_symlink(model, dir.file("link.cmf"));
    fs::create_hard_link(model, dir.file("hard.cmf"));
    check_fails(ctk({"infer", model, "--input", x, "--output", x}), 2, "is the input");
    check_fails(ctk({"infer", model, "--input", x, "--output", model}), 2, "is the input");
    check_fails(ctk({"quantize", model, model, "--calib", "fashion-mnist:train"}), 2, "is the input");
    check_fails(ctk({"quantize", model, dir.file("hard.cmf"), "--calib", "fashion-mnist:train"}), 2, "is the input");
    check_fails(ctk({"prune", model, dir.file("link.cmf"), "--method", "magnitude", "--ratio", "0.5"}), 2,
                "is the input");
    check_fails(ctk({"convert", model, dir.file("hard.cmf")}), 2, "is the input");
    const std::string recipe = dir.file("self.yaml");
    write_text(recipe, "model: m.cmf\noutput: ./m.cmf\nstages: [transforms.fold_batch_norm]\n");
    check_fails(ctk({"run", recipe}), 2, "is the input");
    check_fails(ctk({"run", recipe, "--check"}), 2, "is the input");
    CHECK(read_text(model) == model_bytes);
    CHECK(read_text(x) == x_bytes);
  }
  SECTION("a device or a folder as the output, a missing output folder") {
    check_fails(ctk({"infer", model, "--input", x, "--output", "/dev/null"}), 1, "not a regular file");
    check_fails(ctk({"infer", model, "--input", x, "--output", dir.file("")}), 1, "folder");
    check_fails(ctk({"quantize", model, dir.file("no/such/q.cmf"), "--calib", "fashion-mnist:train"}), 1,
                "does not exist");
  }
  SECTION("a .pt or .onnx name for a .cmf output") {
    check_fails(ctk({"quantize", model, dir.file("q.pt"), "--calib", "fashion-mnist:train"}), 2, "ctk convert");
    check_fails(ctk({"prune", model, dir.file("p.onnx"), "--method", "magnitude", "--ratio", "0.5"}), 2,
                "ctk convert");
    CHECK_FALSE(fs::exists(dir.file("q.pt")));
  }
}

TEST_CASE("names that are not UTF-8 or hold escape sequences: valid JSON and reports, escaped messages",
          "[cli][hostile]") {
  TempDir dir;
  // A node name and a file name with a byte that is not UTF-8 and an ANSI escape.
  ir::Graph g = test::fashion_cnn();
  g.nodes().front()->set_name("conv\xff\x1b[31m");
  const std::string odd = dir.file("odd\xfe\x1b]0;title\x07.cmf");
  REQUIRE(io::save_cmf(g, odd).is_ok());
  Run inspect = ctk({"inspect", odd, "--json"});
  INFO(inspect.err);
  REQUIRE(inspect.exit_code == 0);
  CHECK_NOTHROW(nlohmann::json::parse(inspect.out));
  Run report = ctk({"--quiet", "report", test::fashion_cnn_path(), odd, "--out", dir.file("rep"), "--batch-sizes",
                    "1", "--min-time", "0"});
  INFO(report.err);
  REQUIRE(report.exit_code == 0);
  CHECK_NOTHROW(nlohmann::json::parse(read_text(dir.file("rep/report.json"))));
  // An error that echoes the name escapes the control bytes.
  Run missing = ctk({"inspect", dir.file("gone\x1b[2J.cmf")});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find('\x1b') == std::string::npos);
  CHECK_THAT(missing.err, Catch::Contains("\\x1b[2J"));
}

TEST_CASE("ctk run --check finds what the stages need before anything runs", "[cli][hostile]") {
  TempDir dir;
  const std::string model = copy_fixture(dir, "m.cmf");
  struct Case {
    const char* stages;
    const char* data;
    const char* message;
  };
  const Case cases[] = {
      {"[quant.ptq]", "", "needs calibration data"},
      {"[{prune.magnitude: {criterion: wanda}}]", "", "needs calibration data"},
      {"[{quant.sensitivity: {samples: 8}}]", "data: {calibration: {spec: 'fashion-mnist:train', samples: 8}}\n",
       "needs evaluation data"},
      {"[{quant.ptq: {max_drop: 0.5}}]", "data: {calibration: {spec: 'fashion-mnist:train', samples: 8}}\n",
       "needs evaluation data"},
#ifdef COMPRESS_HAVE_TORCH
      {"[distill.finetune]", "", "needs training data"},
#endif
  };
  for (const Case& c : cases) {
    const std::string recipe = dir.file("needs.yaml");
    write_text(recipe, std::string("model: m.cmf\noutput: out.cmf\n") + c.data + "stages: " + c.stages + "\n");
    for (bool check : {true, false}) {
      Run r = check ? ctk({"run", recipe, "--check"}) : ctk({"run", recipe});
      check_fails(r, 1, c.message);
      CHECK_THAT(r.err, Catch::Contains("needs.yaml:"));  // the stage's line
      CHECK_FALSE(fs::exists(dir.file("out.cmf")));
    }
  }
}

TEST_CASE("nonsense that was silently accepted is refused", "[cli][hostile]") {
  TempDir dir;
  const std::string model = copy_fixture(dir, "m.cmf");
  SECTION("a key given twice in a recipe, at any level") {
    for (const char* text : {"model: m.cmf\nmodel: other.cmf\noutput: o.cmf\nstages: [quant.cle]\n",
                             "model: m.cmf\noutput: o.cmf\nstages: [quant.cle]\nstages: [quant.ptq]\n",
                             "model: m.cmf\noutput: o.cmf\nstages: [{quant.cle: {iterations: 2, iterations: 3}}]\n",
                             "model: m.cmf\noutput: o.cmf\ndata: {calibration: {spec: a, spec: b}}\nstages: [quant.cle]\n"}) {
      write_text(dir.file("dup.yaml"), text);
      check_fails(ctk({"run", dir.file("dup.yaml"), "--check"}), 1, "given twice");
    }
  }
  SECTION("labels outside the model's classes") {
    const std::string x = images_npy(dir, "x.npy");
    for (int64_t bad : {int64_t{200}, int64_t{10}, int64_t{-1}}) {
      const std::string labels = dir.file("y.npy");
      REQUIRE(io::save_npy(ir::Tensor::from_vector<int64_t>(ir::DType::kI64, {8}, {0, 1, 2, bad, 3, 4, 5, 6}), labels)
                  .is_ok());
      Run r = ctk({"eval", model, "--data", "npy:" + x + "," + labels});
      check_fails(r, 1, bad < 0 ? "negative" : "outside the model's 10 classes");
    }
  }
  SECTION("numbers that are not numbers") {
    const std::string m = test::fashion_cnn_path();
    check_fails(ctk({"eval", m, "--data", "fashion-mnist:test", "--limit", "-5"}), 2, "--limit");
    check_fails(ctk({"eval", m, "--data", "fashion-mnist:test", "--std", "inf"}), 2, "--std");
    check_fails(ctk({"eval", m, "--data", "fashion-mnist:test", "--mean", "nan"}), 2, "--mean");
    check_fails(ctk({"quantize", m, dir.file("q.cmf"), "--calib", "fashion-mnist:train", "--std", "nan"}), 2, "--std");
    check_fails(ctk({"bench", m, "--min-time", "nan"}), 2, "--min-time");
    check_fails(ctk({"report", m, m, "--out", dir.file("r"), "--min-time", "inf"}), 2, "--min-time");
#ifdef COMPRESS_HAVE_TORCH
    check_fails(ctk({"inspect", dir.file("x.pt"), "--input-shape", "1,x,28"}), 2, "'x' is not a dimension");
#endif
  }
  SECTION("NaN calibration data is named as such") {
    ir::Tensor x = test::fashion_data("train", 8)->batch(0, 8).value().inputs;
    x.data<float>()[3 * 784 + 17] = std::numeric_limits<float>::quiet_NaN();
    REQUIRE(io::save_npy(x, dir.file("nan.npy")).is_ok());
    for (const char* method : {"quantize", "prune"}) {
      std::vector<std::string> args = {method, model, dir.file("o.cmf"), "--calib", "npy:" + dir.file("nan.npy")};
      if (std::string(method) == "prune") {
        for (const char* a : {"--method", "magnitude", "--criterion", "sparsegpt", "--ratio", "0.5"}) args.push_back(a);
      }
      Run r = ctk(args);
      check_fails(r, 1, "sample 3 has a non-finite value");
      CHECK_FALSE(fs::exists(dir.file("o.cmf")));
    }
  }
}
