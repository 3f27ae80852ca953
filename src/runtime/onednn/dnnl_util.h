// Small oneDNN helpers of the onednn backend: the engine, dtype mapping, memory descriptors, thread scope.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>

#include "compress/ir/dtype.h"
#include "compress/ir/tensor.h"

namespace compress::runtime::onednn {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using md_t = dnnl::memory::desc;
using dims_t = dnnl::memory::dims;

// The process-wide CPU engine (oneDNN engines are cheap to share and
// creating one per plan would repeat the ISA detection).
const dnnl::engine& cpu_engine();

// oneDNN's data type for an IR dtype, when it has one.
std::optional<dt> to_dnnl(ir::DType dtype);
ir::DType from_dnnl(dt type);

// Contiguous row-major descriptor of these dims (rank 0 becomes [1]).
md_t plain_md(const ir::Shape& shape, dt type);
dims_t to_dims(const ir::Shape& shape);
bool is_plain(const md_t& md);

// The activation format tag of a descriptor (abcd, acdb, aBcd16b, ...) when
// it is one of the common ones, so another tensor can take the same layout.
std::optional<tag> activation_tag(const md_t& md);
// A descriptor of `dims` in the layout of `model` (plain when that layout has no common tag).
md_t like(const md_t& model, const dims_t& dims, dt type);

// "f32 [1,64,56,56] nChw16c"-style text for reports.
std::string describe_md(const md_t& md);

// Sets the OpenMP thread count of the calling thread for a scope and
// restores it afterwards (oneDNN's OpenMP build reads it when it creates a
// primitive and when it runs one).
class ThreadScope {
 public:
  explicit ThreadScope(int threads);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int previous_;
};

// The implementation oneDNN picked ("jit:avx512_core", "ref:any", ...).
std::string impl_name(const dnnl::primitive_desc_base& pd);

// Note [Releasing copied weights]
// A weight the plan copies (reordered into a primitive's layout, or folded
// with a batch norm) would be resident twice: the copy, and the graph
// constant it came from. When the constant's bytes are borrowed from a
// mapped .cmf file, its pages go back to the kernel once the copy exists
// (MADV_PAGEOUT). That never loses data: clean file-backed pages are read
// from the file again on the next touch (a reference fallback, the caller's
// own use of the graph), and pages a pass modified in place are anonymous
// copies that stay (no swap). So the mapped originals of a model loaded from
// a .cmf are not resident next to the plan's copies of them.
// Heap-owned tensors (TorchScript imports, pass results) are left alone, and
// a kernel without MADV_PAGEOUT (Linux < 5.4) ignores the request.
void release_mapped_pages(const ir::Tensor& t);

}  // namespace compress::runtime::onednn
