// The .cmf writer: serializes a verified graph (layout in docs/cmf-format.md).
#include <cstring>
#include <limits>
#include <new>
#include <unordered_map>

#include "byte_writer.h"
#include "compress/io/atomic_file.h"
#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"
#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"

namespace compress::io {
namespace {

using namespace cmf;

// A data blob to place in the data section, in header order.
struct Blob {
  const void* data;
  uint64_t length;
  uint64_t offset;
};

uint8_t granularity_code(ir::QuantGranularity g) {
  switch (g) {
    case ir::QuantGranularity::kPerTensor: return kGranularityPerTensor;
    case ir::QuantGranularity::kPerAxis: return kGranularityPerAxis;
    case ir::QuantGranularity::kPerGroup: return kGranularityPerGroup;
  }
  return 0xff;
}

uint8_t attr_code(const ir::Attribute& a) {
  switch (ir::attr_kind(a)) {
    case ir::AttrKind::kInt: return kAttrInt;
    case ir::AttrKind::kFloat: return kAttrFloat;
    case ir::AttrKind::kString: return kAttrString;
    case ir::AttrKind::kInts: return kAttrInts;
    case ir::AttrKind::kFloats: return kAttrFloats;
  }
  return 0xff;
}

// The writer refuses what the reader would refuse, so that save_cmf never
// produces a file that load_cmf rejects.
Status check_shape(const ir::Shape& shape, const std::string& what) {
  if (shape.size() > static_cast<size_t>(ir::kMaxRank)) {
    return invalid_argument("{}: rank {} exceeds the maximum rank {} of the .cmf format", what, shape.size(),
                            ir::kMaxRank);
  }
  int64_t product = 1;
  for (int64_t d : shape) {
    if (d < 0) return invalid_argument("{}: shape {} has a negative dimension", what, ir::shape_to_string(shape));
    if (d != 0) {
      if (product > std::numeric_limits<int64_t>::max() / d) {
        return invalid_argument("{}: element count of shape {} overflows int64", what, ir::shape_to_string(shape));
      }
      product *= d;
    }
  }
  return Status::ok();
}

// Note [Compact CSR indices]
// CSR in memory keeps i64 row pointers and i32 column indices: 8 bytes of
// index per stored f32 value, so a 90%-sparse weight would take 20% of its
// dense size on disk. A bitmask of the logical shape costs 1/8 byte per
// element whatever the sparsity (13% of dense at 90%); the writer uses it for
// CSR tensors of at least kCsrBitmaskMinElements elements whenever it is the
// smaller encoding (below ~3% density the plain indices are), as the on-disk
// format code kSparseCsrBitmask. The choice depends only on the tensor, so
// writing stays canonical.
bool use_csr_bitmask(const ir::Tensor& t, const ir::SparseLayout& layout) {
  if (layout.format != ir::SparseFormat::kCsr || t.rank() < 1 || t.numel() < kCsrBitmaskMinElements) return false;
  int64_t rows = 0, cols = 0;
  ir::matrix_dims(t.shape(), &rows, &cols);
  if (cols > std::numeric_limits<int32_t>::max()) return false;
  const uint64_t bitmask_bytes = (static_cast<uint64_t>(t.numel()) + 7) / 8;
  const uint64_t csr_bytes = 8 * (static_cast<uint64_t>(rows) + 1) + 4 * static_cast<uint64_t>(t.stored_count());
  return bitmask_bytes < csr_bytes;
}

Expected<ir::Tensor> csr_bitmask(const ir::Tensor& t, const ir::SparseLayout& layout) {
  int64_t rows = 0, cols = 0;
  ir::matrix_dims(t.shape(), &rows, &cols);
  const int64_t bytes = (t.numel() + 7) / 8;
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor mask, ir::Tensor::zeros(ir::DType::kU8, {bytes}));
  uint8_t* bits = mask.data<uint8_t>();
  const int64_t* row_ptr = layout.indices[0].data<int64_t>();
  const int32_t* col = layout.indices[1].data<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
      const int64_t i = r * cols + col[p];
      bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (1u << (i % 8)));
    }
  }
  return mask;
}

class Serializer {
 public:
  explicit Serializer(std::string* header) : w_(header) {}

  Status tensor(const std::string& name, const ir::Tensor& t) {
    if (!t.defined()) return invalid_argument("constant '{}' has no tensor", name);
    COMPRESS_RETURN_IF_ERROR(check_shape(t.shape(), fmt::format("constant '{}'", name)));
    w_.string(name);
    shape_and_dtype(t.dtype(), t.shape());
    w_.u64(static_cast<uint64_t>(t.stored_count()));
    const auto& layout = t.sparse_layout();
    const bool sparse = t.is_sparse() && layout != nullptr;
    w_.u8(static_cast<uint8_t>((t.quant() ? kTensorHasQuant : 0) | (sparse ? kTensorHasSparse : 0)));
    if (t.quant()) quant(*t.quant());
    if (sparse && use_csr_bitmask(t, *layout)) {
      w_.u8(kSparseCsrBitmask);
      w_.i64(layout->n);
      w_.i64(layout->m);
      w_.i64(layout->block_h);
      w_.i64(layout->block_w);
      w_.u64(1);
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor mask, csr_bitmask(t, *layout));
      shape_and_dtype(mask.dtype(), mask.shape());
      blob_ref(mask);
      owned_.push_back(std::move(mask));  // the blob points into it until the data is written
    } else if (sparse) {
      w_.u8(static_cast<uint8_t>(layout->format));
      w_.i64(layout->n);
      w_.i64(layout->m);
      w_.i64(layout->block_h);
      w_.i64(layout->block_w);
      w_.u64(layout->indices.size());
      for (size_t i = 0; i < layout->indices.size(); ++i) {
        const ir::Tensor& index = layout->indices[i];
        if (index.is_sparse() || index.is_quantized()) {
          return invalid_argument("tensor '{}': sparse index tensor {} must be dense and unquantized", name, i);
        }
        COMPRESS_RETURN_IF_ERROR(check_shape(index.shape(), fmt::format("tensor '{}' index tensor {}", name, i)));
        shape_and_dtype(index.dtype(), index.shape());
        blob_ref(index);
      }
    }
    blob_ref(t);
    return Status::ok();
  }

  Status value_type(const ir::ValueType& type, const std::string& what) {
    COMPRESS_RETURN_IF_ERROR(check_shape(type.shape, what));
    shape_and_dtype(type.dtype, type.shape);
    w_.u8(type.quant ? 1 : 0);
    if (type.quant) quant(*type.quant);
    return Status::ok();
  }

  void attribute(const std::string& name, const ir::Attribute& a) {
    w_.string(name);
    w_.u8(attr_code(a));
    std::visit(
        [this](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            w_.i64(v);
          } else if constexpr (std::is_same_v<T, double>) {
            w_.f64(v);
          } else if constexpr (std::is_same_v<T, std::string>) {
            w_.string(v);
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
            w_.u64(v.size());
            for (int64_t x : v) w_.i64(x);
          } else {
            w_.u64(v.size());
            for (double x : v) w_.f64(x);
          }
        },
        a);
  }

  // A dense, unquantized tensor as dtype, shape and blobref (annotation payloads).
  Status dense_tensor(const ir::Tensor& t, const std::string& what) {
    if (!t.defined() || t.is_sparse() || t.is_quantized()) {
      return invalid_argument("{}: must be a defined, dense and unquantized tensor", what);
    }
    COMPRESS_RETURN_IF_ERROR(check_shape(t.shape(), what));
    shape_and_dtype(t.dtype(), t.shape());
    blob_ref(t);
    return Status::ok();
  }

  ByteWriter& out() { return w_; }
  std::vector<Blob>& blobs() { return blobs_; }

 private:
  void shape_and_dtype(ir::DType dtype, const ir::Shape& shape) {
    w_.u8(static_cast<uint8_t>(dtype));
    w_.u8(static_cast<uint8_t>(shape.size()));
    for (int64_t d : shape) w_.i64(d);
  }

  void quant(const ir::QuantParams& q) {
    w_.u8(static_cast<uint8_t>(q.storage()));
    w_.u8(granularity_code(q.granularity()));
    w_.i64(q.axis());
    w_.i64(q.group_size());
    w_.i64(q.qmin());
    w_.i64(q.qmax());
    w_.u64(q.scales().size());
    for (float s : q.scales()) w_.f32(s);
    w_.u64(q.zero_points().size());
    for (int32_t z : q.zero_points()) w_.i32(z);
  }

  // Data offsets are assigned in header order, each rounded up to the
  // alignment: exactly the sequence the reader accepts.
  void blob_ref(const ir::Tensor& t) {
    const uint64_t length = t.nbytes();
    const uint64_t offset = next_offset_;
    const uint64_t checksum = checksum64(t.raw_data(), static_cast<size_t>(length));
    w_.u64(offset);
    w_.u64(length);
    w_.u64(checksum);
    blobs_.push_back({t.raw_data(), length, offset});
    next_offset_ = align_up(offset + length, kDataAlignment);
  }

  ByteWriter w_;
  std::vector<Blob> blobs_;
  std::vector<ir::Tensor> owned_;
  uint64_t next_offset_ = 0;

 public:
  uint64_t data_length() const { return next_offset_; }
};

void put_le64(std::string* s, size_t at, uint64_t v) {
  for (size_t i = 0; i < 8; ++i) (*s)[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

Expected<std::string> serialize(const ir::Graph& graph) {
  const Status verified = ir::verify(graph);
  if (!verified.is_ok()) return verified.with_context("cannot save a graph that does not verify");

  std::string header;
  Serializer s(&header);
  ByteWriter& w = s.out();
  w.u32(static_cast<uint32_t>(ir::kOpSetVersion));
  w.string(graph.name);

  // Value indices: inputs, constants, node outputs (see Note [Reader phases]).
  std::unordered_map<const ir::Value*, uint64_t> index;
  const std::vector<ir::Value*> constants = graph.constants();
  w.u64(constants.size());
  for (const ir::Value* c : constants) COMPRESS_RETURN_IF_ERROR(s.tensor(c->name(), c->constant()));

  w.u64(graph.inputs().size());
  for (const ir::Value* in : graph.inputs()) {
    index.emplace(in, index.size());
    w.string(in->name());
    COMPRESS_RETURN_IF_ERROR(s.value_type(in->type(), fmt::format("graph input '{}'", in->name())));
  }
  w.u64(constants.size());
  for (size_t i = 0; i < constants.size(); ++i) {
    index.emplace(constants[i], index.size());
    w.string(constants[i]->name());
    w.u64(i);
  }
  const std::vector<ir::Node*> nodes = graph.nodes();
  w.u64(nodes.size());
  for (const ir::Node* node : nodes) {
    w.string(node->op());
    w.string(node->name());
    w.u64(node->num_inputs());
    for (const ir::Value* v : node->inputs()) {
      auto it = index.find(v);
      if (it == index.end()) {
        return invalid_argument("node '{}' uses value '{}' before it is defined", node->name(),
                                v ? v->name() : "<null>");
      }
      w.u64(it->second);
    }
    w.u64(node->attrs().size());
    for (const auto& [name, value] : node->attrs()) s.attribute(name, value);
    w.u64(node->num_outputs());
    for (const ir::Value* out : node->outputs()) {
      index.emplace(out, index.size());
      w.string(out->name());
      COMPRESS_RETURN_IF_ERROR(s.value_type(out->type(), fmt::format("node '{}' output '{}'", node->name(), out->name())));
    }
  }
  w.u64(graph.outputs().size());
  for (const ir::Value* v : graph.outputs()) {
    auto it = index.find(v);
    if (it == index.end()) return invalid_argument("graph output '{}' is not a value of the graph", v ? v->name() : "<null>");
    w.u64(it->second);
  }
  // Annotations in the store's canonical order; their payload blobs follow
  // every tensor's, in this order.
  const std::vector<ir::Annotation> annotations = graph.annotations().list();
  w.u64(annotations.size());
  for (const ir::Annotation& a : annotations) {
    w.string(a.kind);
    w.u8(static_cast<uint8_t>(a.target.kind()));
    w.string(a.target.name());
    COMPRESS_RETURN_IF_ERROR(s.dense_tensor(a.payload, fmt::format("annotation '{}' of {}", a.kind, a.target.to_string())));
  }

  if (header.size() > kMaxHeaderLength) {
    return unsupported("graph header is {} bytes, more than the {} MiB a .cmf header may have", header.size(),
                       kMaxHeaderLength >> 20);
  }
  const uint64_t data_start = align_up(kHeaderOffset + header.size(), kDataAlignment);
  const uint64_t total = data_start + s.data_length();

  std::string file;
  file.reserve(static_cast<size_t>(total));
  file.append(reinterpret_cast<const char*>(kMagic.data()), kMagic.size());
  file.resize(kPreambleSize, '\0');
  file[kVersionOffset] = static_cast<char>(kCmfVersion & 0xff);
  for (size_t i = 1; i < 4; ++i) file[kVersionOffset + i] = static_cast<char>((kCmfVersion >> (8 * i)) & 0xff);
  put_le64(&file, kHeaderLengthOffset, header.size());
  put_le64(&file, kHeaderChecksumOffset, checksum64(header.data(), header.size()));
  put_le64(&file, kDataLengthOffset, s.data_length());
  file += header;
  file.resize(static_cast<size_t>(data_start), '\0');
  for (const Blob& b : s.blobs()) {
    file.resize(static_cast<size_t>(data_start + b.offset), '\0');
    if (b.length) file.append(static_cast<const char*>(b.data), static_cast<size_t>(b.length));
  }
  file.resize(static_cast<size_t>(total), '\0');
  return file;
}

}  // namespace

Expected<std::string> serialize_cmf(const ir::Graph& graph) {
  try {
    return serialize(graph);
  } catch (const std::bad_alloc&) {
    return io_error("out of memory while serializing graph '{}'", graph.name);
  } catch (const Error& e) {
    return e.status();
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, fmt::format("serializing graph '{}': {}", graph.name, e.what()));
  }
}

Status save_cmf(const ir::Graph& graph, const std::string& path) {
  Expected<std::string> bytes = serialize_cmf(graph);
  if (!bytes) return bytes.status().with_context(fmt::format("saving {}", path));
  return write_file_atomically(path, *bytes);
}

}  // namespace compress::io
