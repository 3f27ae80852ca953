// distill.kd and its parts: pair losses against PyTorch, adapters, pair resolution, the teacher cache, bad input.
#include "torch_catch.h"  // first: Catch after LibTorch's glog CHECK

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "compress/distill/adapter.h"
#include "compress/distill/distiller.h"
#include "compress/distill/kd_loss.h"
#include "compress/distill/kd_pass.h"
#include "compress/distill/losses.h"
#include "compress/distill/teacher.h"
#include "compress/io/cmf.h"
#include "compress/io/npy.h"
#include "compress/ir/verifier.h"
#include "compress/pass/options.h"
#include "compress/runtime/backend.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"
#include "compress/torch/trainable_model.h"
#include "fashion_data.h"

using namespace compress;
using distill::PairLoss;

namespace {

const std::string kSource = COMPRESS_TEST_SOURCE_DIR;

at::Tensor fixture(const std::string& name) {
  auto t = io::load_npy(kSource + "/tests/fixtures/distill/" + name + ".npy");
  REQUIRE(t.has_value());
  auto a = compress::torch::to_aten(*t);
  REQUIRE(a.has_value());
  return a->clone();
}

ir::Graph load(const std::string& file) {
  const std::string path = kSource + "/tests/fixtures/models/" + file;
  Expected<ir::Graph> g = file.size() > 3 && file.substr(file.size() - 3) == ".pt" ? compress::torch::import_file(path)
                                                                                   : io::load_cmf(path);
  REQUIRE(g.has_value());
  return std::move(*g);
}

std::shared_ptr<compress::torch::TrainableModel> trainable(const ir::Graph& g) {
  auto m = compress::torch::TrainableModel::create(g);
  REQUIRE(m.has_value());
  return *m;
}

// Value and gradient of `loss` on the fixture's tensors against PyTorch's.
void check_against_pytorch(const std::string& name,
                           const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& loss) {
  at::Tensor s = fixture(name + "_s").requires_grad_(true);
  const at::Tensor t = fixture(name + "_t");
  const at::Tensor value = loss(s, t);
  value.backward();
  INFO(name);
  CHECK(value.item<double>() == Approx(fixture(name + "_value").item<double>()).epsilon(1e-5));
  const at::Tensor expected = fixture(name + "_grad");
  const double scale = expected.abs().max().item<double>();
  CHECK((s.grad() - expected).abs().max().item<double>() <= 1e-5 * scale + 1e-9);
}

pass::PassOptions options_of(const std::vector<std::pair<std::string, std::string>>& pairs) {
  auto o = pass::PassOptions::from_pairs(pairs, "test");
  REQUIRE(o.has_value());
  return *o;
}

// Runs distill.kd on `student` with the reference model `teacher`.
Expected<pass::PassResult> run_kd(ir::Graph& student, const ir::Graph& teacher, const eval::DataSource& data,
                                  const std::vector<std::pair<std::string, std::string>>& options, uint64_t seed = 1) {
  COMPRESS_ASSIGN_OR_RETURN(distill::KdPass::Options o, distill::KdPass::parse_options(options_of(options)));
  distill::KdPass kd(o);
  pass::PassContext context;
  context.training = &data;
  context.reference_model = &teacher;
  context.rng.seed(seed);
  context.threads = 2;
  context.progress = false;
  return kd.run(student, context);
}

bool same_constants(const ir::Graph& a, const ir::Graph& b) {
  for (const ir::Value* v : a.values()) {
    if (!v->is_constant()) continue;
    const ir::Value* w = b.find_value(v->name());
    if (w == nullptr || !w->is_constant() || !v->constant().bitwise_equal(w->constant())) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("every pair loss and logit KD equal their PyTorch transcription, value and gradient", "[distill]") {
  check_against_pytorch("kd",
                        [](const at::Tensor& s, const at::Tensor& t) { return distill::kd_divergence(s, t, 3.0); });
  check_against_pytorch("mse", distill::mse_loss);
  check_against_pytorch("l1", distill::l1_loss);
  check_against_pytorch("cosine", distill::cosine_loss);
  check_against_pytorch("at", distill::attention_transfer_loss);
  check_against_pytorch("attention_kl", distill::attention_map_kl);
  check_against_pytorch("attention_kl_heads", distill::attention_map_kl);
  // And through the table, by name.
  for (const char* name : {"mse", "l1", "cosine", "at", "attention_kl"}) {
    auto loss = distill::pair_loss_from_name(name);
    REQUIRE(loss.has_value());
    CHECK(std::string(distill::pair_loss_spec(*loss).name) == name);
  }
  auto bad = distill::pair_loss_from_name("kl2");
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("known: mse, l1, cosine, at, attention_kl"));
}

TEST_CASE("pairs parse as STUDENT=TEACHER[:LOSS[:WEIGHT]] or auto, and bad ones say what is expected", "[distill]") {
  auto p = distill::parse_pair("block3.relu2=layer.*:cosine:0.25");
  REQUIRE(p.has_value());
  CHECK(p->student == "block3.relu2");
  CHECK(p->teacher == "layer.*");
  CHECK(p->loss == PairLoss::kCosine);
  CHECK(p->weight == 0.25);
  auto d = distill::parse_pair("a=b");
  REQUIRE(d.has_value());
  CHECK(d->loss == PairLoss::kMse);
  CHECK(d->weight == 1.0);
  CHECK(distill::parse_pair("auto")->automatic);
  for (const char* bad : {"a", "=b", "a=", "a=b:mse:1:2", "a=b:huber", "a=b:mse:-1", "a=b:mse:x"}) {
    INFO(bad);
    auto r = distill::parse_pair(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains(std::string("pair '") + bad + "'"));
  }
}

TEST_CASE("adapters bridge channels, hidden sizes and spatial size, and refuse what cannot be bridged", "[distill]") {
  std::mt19937_64 rng(3);
  auto conv = distill::Adapter::create(PairLoss::kMse, {1, 8, 14, 14}, {1, 16, 7, 7}, rng);
  REQUIRE(conv.has_value());
  CHECK(conv->description() == "1x1 conv 8->16, avg pool 14x14->7x7");
  CHECK(conv->apply(at::randn({3, 8, 14, 14})).sizes() == at::IntArrayRef({3, 16, 7, 7}));
  CHECK(conv->parameters().size() == 2);
  auto up = distill::Adapter::create(PairLoss::kMse, {1, 4, 7, 7}, {1, 4, 14, 14}, rng);
  REQUIRE(up.has_value());
  CHECK(up->description() == "bilinear 7x7->14x14");
  CHECK(up->parameters().empty());
  auto linear = distill::Adapter::create(PairLoss::kMse, {1, 28, 32}, {1, 28, 64}, rng);
  REQUIRE(linear.has_value());
  CHECK(linear->description() == "linear 32->64");
  CHECK(linear->apply(at::randn({2, 28, 32})).sizes() == at::IntArrayRef({2, 28, 64}));
  // at needs the spatial size only; attention_kl the sequence length only.
  auto at_pair = distill::Adapter::create(PairLoss::kAttentionTransfer, {1, 8, 7, 7}, {1, 32, 7, 7}, rng);
  REQUIRE(at_pair.has_value());
  CHECK(at_pair->identity());
  CHECK(distill::Adapter::create(PairLoss::kAttentionKl, {1, 2, 28, 28}, {1, 4, 28, 28}, rng)->identity());

  struct Bad {
    PairLoss loss;
    std::vector<int64_t> s, t;
    const char* says;
  };
  for (const Bad& b : std::vector<Bad>{
           {PairLoss::kMse, {1, 32}, {1, 32, 7, 7}, "no adapter bridges a change of rank"},
           {PairLoss::kMse, {1, 8, 14, 7}, {1, 8, 7, 14}, "larger than the teacher's 7x14 in one dim"},
           {PairLoss::kMse, {1, 28, 32}, {1, 14, 32}, "differ in dim 1"},
           {PairLoss::kAttentionKl, {1, 2, 28, 28}, {1, 2, 14, 14}, "different sequence lengths"},
           {PairLoss::kAttentionTransfer, {1, 64}, {1, 64}, "needs [N, C, H, W]"},
       }) {
    auto a = distill::Adapter::create(b.loss, b.s, b.t, rng);
    REQUIRE_FALSE(a.has_value());
    CHECK_THAT(a.status().message(), Catch::Contains(b.says));
  }
}

TEST_CASE("distill.kd trains the half-width student with feature pairs, and adapters are not in the result", "[distill]") {
  const ir::Graph teacher = load("fashion_resnet.cmf");
  ir::Graph student = load("fashion_resnet_half.pt");
  const ir::Graph before = student.clone();
  auto train = test::fashion_data("train", 256);
  auto r = run_kd(
      student, teacher, *train,
      {{"steps", "16"},
       {"pairs",
        R"(["block3.relu2=block3.relu2:mse", "block1.relu2=block1.relu2:at", "block2.*=block2.*:cosine:0.5"])"}});
  REQUIRE(r.has_value());
  CHECK(r->counters.at("steps") == 16);
  CHECK(r->counters.at("adapters") >= 2);  // 1x1 convs for the 16 -> 32 and 8 -> 16 channel pairs
  CHECK(r->counters.at("final_kd") > 0);
  CHECK(r->layers.at("block3.relu2").at("adapted") == 1);
  CHECK(r->layers.at("block1.relu2").at("adapted") == 0);  // at compares spatial maps: channels may differ
  REQUIRE(ir::verify(student).is_ok());
  CHECK_FALSE(same_constants(before, student));  // trained
  // No adapter tensor in the student; the same constants as before training (by name), no more.
  for (const ir::Value* v : student.values()) {
    if (v->is_constant()) {
      INFO(v->name());
      CHECK(v->name().find("distill") == std::string::npos);
      CHECK(before.find_value(v->name()) != nullptr);
    }
  }
  // It runs on every backend and they agree.
  auto batch = test::fashion_data("test", 8)->batch(0, 8);
  REQUIRE(batch.has_value());
  std::vector<ir::Tensor> outs;
  for (const std::string& name : runtime::available_backends()) {
    auto backend = runtime::make_backend(name);
    REQUIRE(backend.has_value());
    auto plan = (*backend)->compile(student);
    REQUIRE(plan.has_value());
    auto out = (*plan)->run({batch->inputs});
    REQUIRE(out.has_value());
    outs.push_back((*out)[0]);
  }
  for (size_t b = 1; b < outs.size(); ++b) {
    const float* x = outs[0].data<float>();
    const float* y = outs[b].data<float>();
    for (int64_t i = 0; i < outs[0].numel(); ++i) CHECK(std::abs(x[i] - y[i]) <= 1e-3f * (1.0f + std::abs(x[i])));
  }
  // The saved file holds no adapter either.
  const std::string path = (std::filesystem::temp_directory_path() / "compress_kd_student.cmf").string();
  REQUIRE(io::save_cmf(student, path).is_ok());
  auto reloaded = io::load_cmf(path);
  REQUIRE(reloaded.has_value());
  CHECK(reloaded->values().size() == student.values().size());
  std::filesystem::remove(path);
}

TEST_CASE("distill.kd: the teacher cache gives the same run as the live teacher, and stale or corrupt caches are rebuilt",
          "[distill]") {
  const ir::Graph teacher = load("fashion_resnet.cmf");
  const ir::Graph half = load("fashion_resnet_half.pt");
  auto train = test::fashion_data("train", 192);
  // The reference backend computes each sample's row the same wherever it
  // sits in a batch, so cached and live teachers are bit-identical there;
  // onednn's inner product is not (see below).
  const std::vector<std::pair<std::string, std::string>> base = {{"epochs", "2"},
                                                                 {"batch", "32"},
                                                                 {"teacher_backend", "reference"},
                                                                 {"pairs", R"(["block3.relu2=block3.relu2:mse"])"}};
  ir::Graph live = half.clone();
  REQUIRE(run_kd(live, teacher, *train, base).has_value());

  const std::string cache = (std::filesystem::temp_directory_path() / "compress_kd_teacher.cache").string();
  std::filesystem::remove(cache);
  auto with_cache = base;
  with_cache.emplace_back("teacher_cache", cache);
  ir::Graph cached = half.clone();
  auto first = run_kd(cached, teacher, *train, with_cache);
  REQUIRE(first.has_value());
  CHECK(first->counters.at("teacher_cache_reused") == 0);
  // logits [10] and block3.relu2 [32, 14, 14] per sample
  CHECK(first->counters.at("teacher_cache_bytes") == 192.0 * (10 + 32 * 14 * 14) * 4);
  CHECK(same_constants(live, cached));
  CHECK(same_constants(cached, live));

  ir::Graph again = half.clone();
  auto second = run_kd(again, teacher, *train, with_cache);
  REQUIRE(second.has_value());
  CHECK(second->counters.at("teacher_cache_reused") == 1);
  CHECK(same_constants(live, again));

  // A flipped byte in the rows: detected by the checksum, recomputed, the same result.
  {
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(cache) / 2));
    f.put('\x5a');
  }
  ir::Graph repaired = half.clone();
  auto third = run_kd(repaired, teacher, *train, with_cache);
  REQUIRE(third.has_value());
  CHECK(third->counters.at("teacher_cache_reused") == 0);
  CHECK(same_constants(live, repaired));
  // Truncated: rebuilt.
  std::filesystem::resize_file(cache, 100);
  ir::Graph truncated = half.clone();
  auto fourth = run_kd(truncated, teacher, *train, with_cache);
  REQUIRE(fourth.has_value());
  CHECK(fourth->counters.at("teacher_cache_reused") == 0);
  // Other data (fewer samples): a different key, rebuilt, not reused.
  auto fewer = test::fashion_data("train", 160);
  ir::Graph other = half.clone();
  auto fifth = run_kd(other, teacher, *fewer, with_cache);
  REQUIRE(fifth.has_value());
  CHECK(fifth->counters.at("teacher_cache_reused") == 0);
  std::filesystem::remove(cache);

  // On onednn the logits of a sample differ in the last bits with its row in
  // the batch (the inner product's blocking), so the runs agree closely but not bitwise.
  auto on_onednn = [&](std::vector<std::pair<std::string, std::string>> options) {
    options[2].second = "onednn";
    ir::Graph g = half.clone();
    REQUIRE(run_kd(g, teacher, *train, options).has_value());
    return g;
  };
  if (runtime::make_backend("onednn").has_value()) {
    const ir::Graph live_onednn = on_onednn(base);
    const ir::Graph cached_onednn = on_onednn(with_cache);
    for (const ir::Value* v : live_onednn.values()) {
      if (!v->is_constant()) continue;
      auto a = compress::torch::to_aten(v->constant());
      auto b = compress::torch::to_aten(cached_onednn.find_value(v->name())->constant());
      REQUIRE((a.has_value() && b.has_value()));
      INFO(v->name());
      CHECK((*a - *b).abs().max().item<double>() <= 1e-3 * (1.0 + a->abs().max().item<double>()));
    }
    std::filesystem::remove(cache);
  }
}

TEST_CASE("distill.kd alpha 0 trains on labels alone and never runs the teacher", "[distill]") {
  const ir::Graph teacher = load("fashion_resnet.cmf");
  auto train = test::fashion_data("train", 128);
  ir::Graph a = load("fashion_resnet_half.pt");
  auto r = run_kd(a, teacher, *train, {{"steps", "4"}, {"alpha", "0"}});
  REQUIRE(r.has_value());
  CHECK(r->counters.at("final_kd") == 0);
  CHECK(r->counters.at("final_loss") == Approx(r->counters.at("final_ce")));
}

TEST_CASE("distill.kd pairs 'auto' maps a 2-layer transformer student onto a 4-layer teacher by depth", "[distill]") {
  const ir::Graph teacher = load("fashion_transformer.cmf");
  ir::Graph student = load("fashion_transformer_student.pt");
  auto model = trainable(student);
  distill::DistillerOptions o;
  o.pairs = {"auto"};
  auto d = distill::Distiller::create(teacher, *model, o);
  REQUIRE(d.has_value());
  const auto& pairs = (*d)->pairs();
  REQUIRE(pairs.size() == 4);  // attention and hidden state per student block
  CHECK(pairs[0].loss == PairLoss::kAttentionKl);
  CHECK(pairs[1].loss == PairLoss::kMse);
  CHECK(pairs[0].teacher.find("blocks.1.") != std::string::npos);  // student block 0 -> teacher block 1
  CHECK(pairs[2].teacher.find("blocks.3.") != std::string::npos);  // the last to the last
  CHECK(pairs[0].student.find("blocks.0.") != std::string::npos);
  CHECK(pairs[0].adapter.identity());  // 2 heads against 4: compared on the head means
  CHECK(pairs[1].adapter.description() == "linear 32->64");
  // The loss of a batch in a user's own loop, with gradients into the student and the adapter.
  auto batch = test::fashion_data("train", 16)->batch(0, 16);
  REQUIRE(batch.has_value());
  auto inputs = compress::torch::to_aten(batch->inputs);
  REQUIRE(inputs.has_value());
  const at::Tensor labels = at::tensor(batch->labels, at::kLong);
  auto loss = (*d)->loss(*inputs, labels);
  REQUIRE(loss.has_value());
  REQUIRE(loss->pairs.size() == 4);
  for (const at::Tensor& p : loss->pairs) CHECK(p.item<double>() > 0);
  loss->total.backward();
  bool adapter_has_grad = false;
  for (const auto& item : model->named_parameters()) {
    if (item.key().find("distill.adapter") != std::string::npos && item.value().grad().defined()) {
      adapter_has_grad = item.value().grad().abs().sum().item<double>() > 0;
    }
  }
  CHECK(adapter_has_grad);
}

TEST_CASE("distill.kd bad input: unknown values, unbridgeable pairs, mismatched models, bad options", "[distill]") {
  const ir::Graph teacher = load("fashion_resnet.cmf");
  auto train = test::fashion_data("train", 64);
  auto fails = [&](ir::Graph student, const std::vector<std::pair<std::string, std::string>>& options,
                   const std::string& says) {
    INFO(says);
    auto r = run_kd(student, teacher, *train, options);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains(says));
  };
  const ir::Graph half = load("fashion_resnet_half.pt");
  fails(half.clone(), {{"steps", "1"}, {"pairs", R"(["nope=block3.relu2"])"}},
        "the student has no node or value named 'nope'");
  fails(half.clone(), {{"steps", "1"}, {"pairs", R"(["block3.relu2=nope"])"}},
        "the teacher has no node or value named 'nope'");
  fails(half.clone(), {{"steps", "1"}, {"pairs", R"(["zz*=block3.relu2"])"}},
        "the pattern 'zz*' matches no node of the student");
  fails(half.clone(), {{"steps", "1"}, {"pairs", R"(["fc=block3.relu2"])"}}, "no adapter bridges a change of rank");
  fails(half.clone(), {{"steps", "1"}, {"pairs", R"(["auto"])"}}, "has no attention maps");

  // A teacher of another input shape, and one of other classes.
  auto tiny = [](ir::Shape input, int64_t classes) {
    ir::Graph g;
    ir::Value* x = g.add_input("image", ir::ValueType{ir::DType::kF32, input, nullptr}).value();
    ir::Node* flat = g.add_node("flatten", {x}, {}, "flatten").value();
    const int64_t features = input[1] * input[2] * input[3];
    ir::Value* w = g.add_constant("fc.weight", ir::Tensor::zeros(ir::DType::kF32, {classes, features}).value()).value();
    ir::Node* fc = g.add_node("linear", {flat->output(0), w}, {}, "fc").value();
    g.set_outputs({fc->output(0)});
    return g;
  };
  for (const auto& [input, classes, says] : std::vector<std::tuple<ir::Shape, int64_t, std::string>>{
           {{1, 1, 14, 14}, 10, "differ (beyond the batch)"},
           {{1, 1, 28, 28}, 5, "the student has 10 output classes and the teacher 5"}}) {
    const ir::Graph other = tiny(input, classes);
    ir::Graph student = half.clone();
    auto opts = distill::KdPass::parse_options(options_of({{"steps", "1"}}));
    REQUIRE(opts.has_value());
    distill::KdPass kd(*opts);
    pass::PassContext context;
    context.training = train.get();
    context.reference_model = &other;
    context.progress = false;
    auto r = kd.run(student, context);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains(says));
  }

  // Option errors name the key, before anything runs.
  for (const auto& [key, value, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"temperature", "0", "option 'temperature'"},
           {"temperature", "-1", "option 'temperature'"},
           {"alpha", "1.5", "option 'alpha'"},
           {"alpha", "-0.1", "option 'alpha'"},
           {"balance", "dynamic", "option 'balance'"},
           {"pairs", R"(["a=b:huber"])", "unknown pair loss 'huber'"},
           {"teacher_backend", "gpu", "option 'teacher_backend'"}}) {
    INFO(key << "=" << value);
    auto o = distill::KdPass::parse_options(options_of({{key, value}}));
    REQUIRE_FALSE(o.has_value());
    CHECK_THAT(o.status().message(), Catch::Contains(says));
  }
  // No teacher at all.
  {
    ir::Graph student = half.clone();
    distill::KdPass kd;
    pass::PassContext context;
    context.training = train.get();
    auto r = kd.run(student, context);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains("distill.kd needs a teacher"));
  }
}
