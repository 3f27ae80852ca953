// onednn_thread_probe N option|global|throttle: runs a conv plan with N threads and prints how many OS threads the
// process has and a checksum of the output.
//
// The thread test runs this in a fresh process, where the count of
// /proc/self/task entries is exactly main + the OpenMP workers oneDNN used.
// The spin throttle (Note [Spinning on a busy machine]) is off for the count,
// since it parks a thread pool when other processes (other tests) are busy;
// `throttle` turns it on to show that it does park one and changes no result.
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "compress/runtime/onednn.h"
#include "compress/support/threads.h"

namespace {

int count_tasks() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace compress;
  if (argc < 3) {
    std::fprintf(stderr, "usage: onednn_thread_probe N option|global|throttle\n");
    return 2;
  }
  const int threads = std::atoi(argv[1]);
  const bool via_option = std::strcmp(argv[2], "option") == 0;
  const bool throttle = std::strcmp(argv[2], "throttle") == 0;
  ::setenv("COMPRESS_SPIN_THROTTLE", throttle ? "on" : "off", 1);
  runtime::OnednnOptions options;
  if (via_option) {
    options.threads = threads;
    set_num_threads(threads + 3);  // must be ignored: the option wins
  } else {
    set_num_threads(threads);
  }
  ir::Graph g;
  ir::Value* x = g.add_input("x", ir::ValueType{ir::DType::kF32, {4, 64, 28, 28}, nullptr}).value();
  ir::Tensor w = ir::Tensor::zeros(ir::DType::kF32, {64, 64, 3, 3}).value();
  std::mt19937 gen(1);
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = std::uniform_real_distribution<float>(-0.1f, 0.1f)(gen);
  ir::Value* wv = g.add_constant("w", w).value();
  ir::Node* conv = g.add_node("conv2d", {x, wv}, {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv").value();
  ir::Node* relu = g.add_node("relu", {conv->output()}, {}, "relu").value();
  ir::Node* pool = g.add_node("max_pool2d", {relu->output()},
                              {{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{2, 2}}}, "pool")
                       .value();
  g.set_outputs({pool->output()});
  auto plan = runtime::make_onednn_backend(options)->compile(g);
  if (!plan.has_value()) {
    std::fprintf(stderr, "%s\n", plan.status().to_string().c_str());
    return 1;
  }
  ir::Tensor input = ir::Tensor::zeros(ir::DType::kF32, {4, 64, 28, 28}).value();
  for (int64_t i = 0; i < input.numel(); ++i) input.data<float>()[i] = std::uniform_real_distribution<float>(-1, 1)(gen);
  double checksum = 0;
  for (int r = 0; r < 3; ++r) {
    auto out = (*plan)->run({input});
    if (!out.has_value()) {
      std::fprintf(stderr, "%s\n", out.status().to_string().c_str());
      return 1;
    }
    checksum = 0;
    for (int64_t i = 0; i < (*out)[0].numel(); ++i) checksum += (*out)[0].data<float>()[i] * static_cast<double>(i % 97);
  }
  // The parked pool starts in the background: give it a moment to exist.
  if (throttle) ::usleep(200 * 1000);
  std::printf("plan_threads=%d tasks=%d checksum=%.17g\n", runtime::as_onednn_plan(**plan)->report().threads,
              count_tasks(), checksum);
  return 0;
}
