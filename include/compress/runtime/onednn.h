// The oneDNN CPU backend: IR graphs compiled into plans of fused oneDNN primitives, with its options and plan report.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compress/runtime/backend.h"

namespace compress::runtime {

// What conv2d / linear / matmul compute in. Quantized ops (qconv2d, qlinear,
// qmatmul) always run in int8 with the exact contract of docs/ops.md.
enum class OnednnCompute { kF32, kBF16 };

struct OnednnOptions {
  // kBF16: f32 conv/linear/matmul run with bf16 inputs and weights (f32
  // accumulation), and activations stay bf16 between primitives; graph
  // inputs and outputs stay f32.
  OnednnCompute compute = OnednnCompute::kF32;
  // Threads for oneDNN (OpenMP) at compile and run time; 0 means
  // compress::num_threads() at compile time. oneDNN fixes a primitive's work
  // split when it is created, so a plan keeps the count it was compiled with.
  int threads = 0;
  // Fuse bias/eltwise/residual-add post-ops and fold batch norm (off: one
  // primitive per node; for tests and for measuring what fusion buys).
  bool fuse = true;
  // Input shapes (by batch) whose plans are kept; the least recently used
  // one is dropped beyond this.
  int max_cached_shapes = 8;
};

// The onednn backend's steps and fallbacks are the runtime's (backend.h).
using OnednnFallback = PlanFallback;
using OnednnStep = PlanStep;

// What a compiled plan does for one input shape (ctk bench --explain).
struct OnednnPlanReport {
  std::vector<std::vector<int64_t>> input_shapes;
  OnednnCompute compute = OnednnCompute::kF32;
  int threads = 0;
  std::vector<OnednnStep> steps;
  std::vector<OnednnFallback> fallbacks;
  int reorders = 0;           // activation reorders inserted between primitives or at the boundaries
  int fused_nodes = 0;        // nodes folded or fused into another node's primitive
  size_t arena_bytes = 0;     // activation memory after buffer reuse
  size_t unshared_bytes = 0;  // what the same buffers would take without reuse
  size_t weight_bytes = 0;    // weights and biases in their reordered layouts
  double compile_ms = 0;      // building this shape's primitives (first run of a new shape)
  int64_t profiled_runs = 0;  // runs timed step by step (OnednnPlan::set_profiling)

  // Human-readable listing: one line per step, then the fallbacks with reasons.
  std::string to_string() const;
  // The profiled time per run: the `top` slowest steps, then totals per step
  // kind and overall. Empty when no run was profiled.
  std::string profile_to_string(size_t top = 15) const;
};

// The plan the onednn backend compiles. Plans are not thread-safe.
class OnednnPlan : public ExecutionPlan {
 public:
  // Report of the most recently compiled or run input shape.
  virtual const OnednnPlanReport& report() const = 0;
  // Fallbacks of every input shape compiled so far (shape-dependent ones
  // included), one entry per node.
  virtual std::vector<OnednnFallback> fallbacks() const = 0;
  // Compiles (or finds) the plan for these input shapes without running it.
  virtual Status prepare(const std::vector<std::vector<int64_t>>& input_shapes) = 0;
  virtual const OnednnOptions& options() const = 0;
};

// The plan behind an ExecutionPlan from the onednn backend; null for other backends.
const OnednnPlan* as_onednn_plan(const ExecutionPlan& plan);

std::unique_ptr<Backend> make_onednn_backend(const OnednnOptions& options = {});

// "oneDNN 2.6.3 (OpenMP threading, ISA avx512_core_bf16)": what this build links.
std::string onednn_runtime_info();

// Note [int8 and bf16 by CPU ISA]
// What oneDNN 2.6 can compute on this CPU (its effective ISA, which
// ONEDNN_MAX_CPU_ISA can lower):
// - int8: without VNNI (sse41, avx, avx2, avx512_core) the int8 kernels
//   multiply u8 by s8 with vpmaddubsw, which adds each pair of products in a
//   saturating int16. 2 * 255 * 64 = 32640 fits, 2 * 255 * 128 does not, so
//   those kernels are exact only for weights within [-64, 64]. A qconv2d or
//   qlinear whose centered weights reach further, and a qmatmul whose s8
//   operand may, runs on the reference kernels instead (exact, slower), named
//   with this reason in the plan's fallbacks. 4-bit weights always fit, and so
//   do 7-bit ones (quant.ptq weight_bits: 7). A qconv2d with an s8 source is
//   refused there too: for a signed source oneDNN's convolutions halve the
//   weights (its "wei_adj_scale"), which rounds odd ones. With VNNI
//   (avx2_vnni, avx512_core_vnni and up) products are summed in int32: every
//   s8 weight, either source type.
// - bf16: oneDNN 2.6 has bf16 convolution and matmul kernels from
//   avx512_core up; on older CPUs a bf16 plan is refused at compile time.
struct OnednnCpuSupport {
  std::string isa;                // oneDNN's effective ISA ("avx2", "avx512_core_vnni", ...)
  bool bf16 = false;              // bf16 compute is available
  bool int8_vnni = true;          // int8 products summed in int32 (no 16-bit pairs)
  int int8_weight_limit = 127;    // largest |centered s8 weight| the int8 kernels sum exactly
};
const OnednnCpuSupport& onednn_cpu_support();
// Ok, or kUnsupported naming the ISA when this CPU cannot run `compute`.
Status onednn_compute_available(OnednnCompute compute);

}  // namespace compress::runtime
