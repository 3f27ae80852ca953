// libFuzzer target for the .cmf reader: no input may crash it, and every accepted input must round-trip.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"
#include "compress/ir/printer.h"
#include "compress/ir/sparse_layout.h"
#include "fuzz_common.h"

using namespace compress;

namespace {

// Note [Sparse logical size]
// A sparse tensor's logical shape is not bounded by the file: a few stored
// blocks can describe a [4, 5e13] weight, which is structurally valid. Only
// densify tensors of a sane size here. The bound is in elements and small:
// densifying costs per logical element (a quantized one computes its zero
// point for each), and 59M of them took 52 s under ASan, a libFuzzer
// timeout that said nothing about the reader
// (regressions/cmf/slow-densify-59m-elements.cmf).
constexpr int64_t kMaxDenseElements = int64_t{1} << 20;

// Touches everything an accepted graph exposes, so that a field the reader
// failed to validate shows up as a sanitizer report here rather than in a
// pass months later.
void exercise(const ir::Graph& g) {
  (void)ir::print_graph(g);
  for (const ir::Value* c : g.constants()) {
    const ir::Tensor& t = c->constant();
    if (t.numel() > kMaxDenseElements) continue;
    Expected<ir::Tensor> dense = t.to_dense();
    if (!dense) __builtin_trap();  // a validated sparse tensor of a sane size must densify
    (void)dense->sparsity();
    if (dense->numel() > 0) (void)dense->element_as_double(dense->numel() - 1);
  }
  for (const ir::Annotation& a : g.annotations().list()) {
    (void)a.target.to_string();
    if (a.payload.numel() > 0) (void)a.payload.element_as_double(a.payload.numel() - 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Checksums off: mutated bytes then reach the structural checks behind
  // them instead of stopping at the header checksum.
  io::cmf::ParseOptions structural;
  structural.verify_header_checksum = false;
  structural.verify_data_checksums = false;
  Expected<ir::Graph> graph = io::cmf::parse_image(data, size, "fuzz", structural);
  if (!graph.has_value()) fuzz::check_not_internal(graph.status());
  if (graph.has_value()) {
    exercise(*graph);
    // Whatever the reader accepts, the writer must write and the reader must
    // read back to the same bytes.
    Expected<std::string> bytes = io::serialize_cmf(*graph);
    if (!bytes) __builtin_trap();
    Expected<ir::Graph> again = io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), "again");
    if (!again) __builtin_trap();
    Expected<std::string> bytes2 = io::serialize_cmf(*again);
    if (!bytes2 || *bytes2 != *bytes) __builtin_trap();
  }
  // And the default, fully checked path.
  Expected<ir::Graph> checked = io::parse_cmf(data, size, "fuzz");
  if (!checked) fuzz::check_not_internal(checked.status());
  return 0;
}
