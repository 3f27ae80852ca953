// oneDNN helpers: engine, dtype mapping, descriptor text, OpenMP thread scope.
#include "dnnl_util.h"

#include <fmt/format.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <numeric>

namespace compress::runtime::onednn {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

std::optional<dt> to_dnnl(ir::DType dtype) {
  switch (dtype) {
    case ir::DType::kF32:
      return dt::f32;
    case ir::DType::kBF16:
      return dt::bf16;
    case ir::DType::kF16:
      return dt::f16;
    case ir::DType::kI8:
      return dt::s8;
    case ir::DType::kU8:
      return dt::u8;
    case ir::DType::kI32:
      return dt::s32;
    default:
      return std::nullopt;
  }
}

ir::DType from_dnnl(dt type) {
  switch (type) {
    case dt::bf16:
      return ir::DType::kBF16;
    case dt::f16:
      return ir::DType::kF16;
    case dt::s8:
      return ir::DType::kI8;
    case dt::u8:
      return ir::DType::kU8;
    case dt::s32:
      return ir::DType::kI32;
    default:
      return ir::DType::kF32;
  }
}

dims_t to_dims(const ir::Shape& shape) {
  if (shape.empty()) return {1};
  return dims_t(shape.begin(), shape.end());
}

md_t plain_md(const ir::Shape& shape, dt type) {
  const dims_t dims = to_dims(shape);
  dims_t strides(dims.size(), 1);
  for (size_t i = dims.size() - 1; i > 0; --i) strides[i - 1] = strides[i] * std::max<int64_t>(dims[i], 1);
  return md_t(dims, type, strides);
}

bool is_plain(const md_t& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked || d.format_desc.blocking.inner_nblks != 0 || d.offset0 != 0) return false;
  return md == plain_md(ir::Shape(d.dims, d.dims + d.ndims), md.data_type());
}

std::optional<tag> activation_tag(const md_t& md) {
  static const std::vector<tag> k2 = {tag::ab, tag::ba};
  static const std::vector<tag> k3 = {tag::abc, tag::acb, tag::aBc16b, tag::aBc8b, tag::aBc4b};
  static const std::vector<tag> k4 = {tag::abcd, tag::acdb, tag::aBcd16b, tag::aBcd8b, tag::aBcd4b};
  static const std::vector<tag> k5 = {tag::abcde, tag::acdeb, tag::aBcde16b, tag::aBcde8b, tag::aBcde4b};
  const int rank = md.data.ndims;
  const std::vector<tag>* candidates = rank == 2 ? &k2 : rank == 3 ? &k3 : rank == 4 ? &k4 : rank == 5 ? &k5 : nullptr;
  if (candidates == nullptr || md.data.format_kind != dnnl_blocked) return std::nullopt;
  const dims_t dims = md.dims();
  for (tag t : *candidates) {
    if (md_t(dims, md.data_type(), t) == md) return t;
  }
  return std::nullopt;
}

md_t like(const md_t& model, const dims_t& dims, dt type) {
  if (static_cast<int>(dims.size()) == model.data.ndims) {
    if (auto t = activation_tag(model)) return md_t(dims, type, *t);
  }
  return plain_md(ir::Shape(dims.begin(), dims.end()), type);
}

std::string describe_md(const md_t& md) {
  const dnnl_memory_desc_t& d = md.data;
  const char* type = "?";
  switch (md.data_type()) {
    case dt::f32:
      type = "f32";
      break;
    case dt::bf16:
      type = "bf16";
      break;
    case dt::f16:
      type = "f16";
      break;
    case dt::s8:
      type = "s8";
      break;
    case dt::u8:
      type = "u8";
      break;
    case dt::s32:
      type = "s32";
      break;
    default:
      break;
  }
  std::string dims;
  for (int i = 0; i < d.ndims; ++i) dims += fmt::format("{}{}", i ? "," : "", d.dims[i]);
  std::string layout = "any";
  if (d.format_kind == dnnl_blocked) {
    // oneDNN's own notation: outer dims by decreasing stride (upper case
    // when blocked), then the inner blocks ("aBcd16b" is nChw16c).
    const dnnl_blocking_desc_t& b = d.format_desc.blocking;
    std::vector<int> order(static_cast<size_t>(d.ndims));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] > b.strides[y]; });
    std::vector<bool> blocked(static_cast<size_t>(d.ndims), false);
    for (int i = 0; i < b.inner_nblks; ++i) blocked[static_cast<size_t>(b.inner_idxs[i])] = true;
    layout.clear();
    for (int i : order) layout += static_cast<char>((blocked[static_cast<size_t>(i)] ? 'A' : 'a') + i);
    for (int i = 0; i < b.inner_nblks; ++i)
      layout += fmt::format("{}{}", b.inner_blks[i], static_cast<char>('a' + b.inner_idxs[i]));
  }
  return fmt::format("{}[{}]:{}", type, dims, layout);
}

ThreadScope::ThreadScope(int threads) : previous_(omp_get_max_threads()) {
  if (threads > 0 && threads != previous_) omp_set_num_threads(threads);
}

ThreadScope::~ThreadScope() {
  if (omp_get_max_threads() != previous_) omp_set_num_threads(previous_);
}

std::string impl_name(const dnnl::primitive_desc_base& pd) {
  const char* s = pd.impl_info_str();
  return s ? std::string(s) : std::string();
}

void release_mapped_pages(const ir::Tensor& t) {
#ifdef MADV_PAGEOUT
  if (t.storage() == nullptr || !t.storage()->is_borrowed() || t.raw_data() == nullptr) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.raw_data());
  const uintptr_t first = (begin + page - 1) / page * page, last = (begin + t.nbytes()) / page * page;
  // Whole pages inside the tensor only: the edges may hold a neighbour's bytes.
  if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
#else
  (void)t;
#endif
}

}  // namespace compress::runtime::onednn
