// The .cmf reader: treats every file as hostile (layout in docs/cmf-format.md).
#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "byte_reader.h"
#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"
#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "compress/support/check.h"
#include "compress/support/logging.h"
#include "file_util.h"

namespace compress::io {
namespace {

using namespace cmf;

// Note [Reader phases]
// 1. The preamble is checked against the real file size (magic, version,
//    header length cap, declared total size).
// 2. The header is decoded into plain records; every count and length is
//    bounded by the bytes left before anything is allocated for it, and every
//    shape is checked for rank, sign and int64 overflow.
// 3. The data references of all records are checked as one sequence: exact
//    lengths, no wrap, inside the data section, aligned, no overlap, no gap.
// 4. Only then is data touched: checksums, sparse index validation, tensors.
// 5. The graph is built through the IR's own API and ir::verify() has the
//    last word, so a file can never produce a graph that code built in
//    memory could not.

struct BlobRef {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t checksum = 0;
  uint64_t field_at = 0;  // header byte where the reference starts
};

struct IndexRecord {
  ir::DType dtype = ir::DType::kI64;
  ir::Shape shape;
  BlobRef blob;
};

struct TensorRecord {
  std::string name;
  uint64_t at = 0;
  ir::DType dtype = ir::DType::kF32;
  ir::Shape shape;
  int64_t numel = 0;
  uint64_t stored_count = 0;
  std::shared_ptr<const ir::QuantParams> quant;
  bool sparse = false;
  ir::SparseFormat format = ir::SparseFormat::kDense;
  bool csr_bitmask = false;  // kSparseCsrBitmask: format is kCsr, indices are one bitmask
  int64_t n = 0, m = 0, block_h = 0, block_w = 0;
  std::vector<IndexRecord> indices;
  BlobRef data;
};

struct InputRecord {
  std::string name;
  ir::ValueType type;
};

struct ConstantRecord {
  std::string name;
  uint64_t tensor = 0;
};

struct NodeRecord {
  std::string op;
  std::string name;
  uint64_t at = 0;
  std::vector<uint64_t> inputs;
  ir::AttributeMap attrs;
  std::vector<std::string> output_names;
  std::vector<ir::ValueType> output_types;
};

// A version-2 annotation; its payload is encoded like a sparse index tensor.
struct AnnotationRecord {
  std::string kind;
  ir::AnnotationTarget::Kind target = ir::AnnotationTarget::Kind::kGraph;
  std::string target_name;
  uint64_t at = 0;
  IndexRecord payload;
};

struct Header {
  uint32_t version = 0;
  std::string graph_name;
  std::vector<TensorRecord> tensors;
  std::vector<InputRecord> inputs;
  std::vector<ConstantRecord> constants;
  std::vector<NodeRecord> nodes;
  std::vector<uint64_t> outputs;
  std::vector<AnnotationRecord> annotations;
};

std::string annotation_what(const AnnotationRecord& a) {
  return fmt::format("annotation '{}' of {}", a.kind, ir::annotation_target_to_string(a.target, a.target_name));
}

struct Preamble {
  uint32_t version = 0;
  uint64_t header_length = 0;
  uint64_t header_checksum = 0;
  uint64_t data_length = 0;
  uint64_t data_start = 0;  // absolute file offset of the data section
};

std::string hex_bytes(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += fmt::format("{}{:02x}", i ? " " : "", p[i]);
  return s;
}

// ---- phase 1: preamble ------------------------------------------------------

// `prefix` holds min(file_size, kPreambleSize) bytes from the start of the file.
Status check_preamble(const uint8_t* prefix, uint64_t file_size, const std::string& source, Preamble* out) {
  if (file_size == 0) return corrupt_file("{}: file is empty (0 bytes); a .cmf file starts with an 8-byte magic", source);
  if (file_size < kMagic.size()) {
    return corrupt_file("{}: file is {} bytes, too short to be a .cmf file (the magic alone is {} bytes)", source,
                        file_size, kMagic.size());
  }
  if (std::memcmp(prefix, kMagic.data(), kMagic.size()) != 0) {
    return corrupt_file("{}: not a .cmf file: bad magic (first 8 bytes are {}, expected {})", source,
                        hex_bytes(prefix, kMagic.size()), hex_bytes(kMagic.data(), kMagic.size()));
  }
  if (file_size < kVersionOffset + 4) {
    return corrupt_file("{}: file is {} bytes, truncated inside the {}-byte preamble", source, file_size,
                        kPreambleSize);
  }
  const uint32_t version = load_le<uint32_t>(prefix + kVersionOffset);
  if (version < kCmfOldestReadableVersion || version > kCmfVersion) {
    return unsupported("{}: file has .cmf version {}{}; this build reads versions {} to {}", source, version,
                       version == 0 ? " (never a valid version)"
                       : version > kCmfVersion ? " (written by a newer compress; upgrade to read it)"
                                               : "",
                       kCmfOldestReadableVersion, kCmfVersion);
  }
  out->version = version;
  if (file_size < kPreambleSize) {
    return corrupt_file("{}: file is {} bytes, truncated inside the {}-byte preamble", source, file_size,
                        kPreambleSize);
  }
  const uint32_t flags = load_le<uint32_t>(prefix + kFlagsOffset);
  if (flags != 0) {
    return unsupported("{}: byte {}: flags 0x{:x} are not known to this build (version {} defines none)", source,
                       kFlagsOffset, flags, version);
  }
  if (load_le<uint64_t>(prefix + kReservedOffset) != 0) {
    return corrupt_file("{}: byte {}: reserved preamble field is not zero", source, kReservedOffset);
  }
  out->header_length = load_le<uint64_t>(prefix + kHeaderLengthOffset);
  out->header_checksum = load_le<uint64_t>(prefix + kHeaderChecksumOffset);
  out->data_length = load_le<uint64_t>(prefix + kDataLengthOffset);
  if (out->header_length > kMaxHeaderLength) {
    return corrupt_file("{}: byte {}: header length {} exceeds the {} MiB limit", source, kHeaderLengthOffset,
                        out->header_length, kMaxHeaderLength >> 20);
  }
  if (out->header_length > file_size - kPreambleSize) {
    return corrupt_file("{}: byte {}: header length {} runs past the end of the file ({} bytes, {} after the "
                        "preamble)",
                        source, kHeaderLengthOffset, out->header_length, file_size, file_size - kPreambleSize);
  }
  // Cannot overflow: both terms are bounded by the 64 MiB cap.
  out->data_start = align_up(kHeaderOffset + out->header_length, kDataAlignment);
  if (out->data_length % kDataAlignment != 0) {
    return corrupt_file("{}: byte {}: data section length {} is not a multiple of {}", source, kDataLengthOffset,
                        out->data_length, kDataAlignment);
  }
  const uint64_t after_header = file_size >= out->data_start ? file_size - out->data_start : 0;
  if (file_size < out->data_start || after_header < out->data_length) {
    return corrupt_file("{}: file is truncated: it is {} bytes, but its preamble declares a {}-byte header and a "
                        "{}-byte data section starting at byte {}",
                        source, file_size, out->header_length, out->data_length, out->data_start);
  }
  if (after_header > out->data_length) {
    return corrupt_file("{}: {} unexpected trailing bytes after the data section (which ends at byte {})", source,
                        after_header - out->data_length, out->data_start + out->data_length);
  }
  return Status::ok();
}

// ---- phase 2: header --------------------------------------------------------

Status read_dtype(ByteReader& r, std::string_view what, ir::DType* out) {
  const uint64_t at = r.offset();
  uint8_t code = 0;
  COMPRESS_RETURN_IF_ERROR(r.u8(&code, what));
  const std::optional<ir::DType> dtype = ir::dtype_from_code(code);
  if (!dtype) {
    return r.fail_at(at, "{}: unknown dtype code {} (this build knows codes 1..{})", what, code,
                     ir::kDTypeTable.size());
  }
  *out = *dtype;
  return Status::ok();
}

Status read_shape(ByteReader& r, std::string_view what, ir::Shape* shape, int64_t* numel) {
  const uint64_t at = r.offset();
  uint8_t rank = 0;
  COMPRESS_RETURN_IF_ERROR(r.u8(&rank, what));
  if (rank > ir::kMaxRank) return r.fail_at(at, "{}: rank {} exceeds the maximum rank {}", what, rank, ir::kMaxRank);
  shape->assign(rank, 0);
  for (size_t i = 0; i < rank; ++i) {
    const uint64_t dim_at = r.offset();
    COMPRESS_RETURN_IF_ERROR(r.i64(&(*shape)[i], what));
    if ((*shape)[i] < 0) {
      return r.fail_at(dim_at, "{}: dimension {} is negative ({})", what, i, (*shape)[i]);
    }
  }
  // Stricter than checked_numel: the product of the non-zero dims must fit
  // too, so that code computing partial products (rows x cols views of a
  // shape with a zero dim) cannot overflow either.
  int64_t product = 1;
  bool has_zero = false;
  for (int64_t d : *shape) {
    if (d == 0) {
      has_zero = true;
    } else if (product > std::numeric_limits<int64_t>::max() / d) {
      return r.fail_at(at, "{}: element count of shape {} overflows int64", what, ir::shape_to_string(*shape));
    } else {
      product *= d;
    }
  }
  *numel = has_zero ? 0 : product;
  return Status::ok();
}

Status read_quant(ByteReader& r, std::string_view what, std::shared_ptr<const ir::QuantParams>* out) {
  const uint64_t at = r.offset();
  ir::QuantParams::Spec spec;
  COMPRESS_RETURN_IF_ERROR(read_dtype(r, what, &spec.storage));
  const uint64_t granularity_at = r.offset();
  uint8_t granularity = 0;
  COMPRESS_RETURN_IF_ERROR(r.u8(&granularity, what));
  switch (granularity) {
    case kGranularityPerTensor: spec.granularity = ir::QuantGranularity::kPerTensor; break;
    case kGranularityPerAxis: spec.granularity = ir::QuantGranularity::kPerAxis; break;
    case kGranularityPerGroup: spec.granularity = ir::QuantGranularity::kPerGroup; break;
    default:
      return r.fail_at(granularity_at, "{}: unknown quant granularity code {} (expected 0, 1 or 2)", what,
                       granularity);
  }
  int64_t qmin = 0, qmax = 0;
  COMPRESS_RETURN_IF_ERROR(r.i64(&spec.axis, what));
  COMPRESS_RETURN_IF_ERROR(r.i64(&spec.group_size, what));
  COMPRESS_RETURN_IF_ERROR(r.i64(&qmin, what));
  COMPRESS_RETURN_IF_ERROR(r.i64(&qmax, what));
  spec.qmin = qmin;
  spec.qmax = qmax;
  uint64_t count = 0;
  COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: scale count", what), 4));
  spec.scales.resize(static_cast<size_t>(count));
  for (float& s : spec.scales) COMPRESS_RETURN_IF_ERROR(r.f32(&s, what));
  COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: zero point count", what), 4));
  spec.zero_points.resize(static_cast<size_t>(count));
  for (int32_t& z : spec.zero_points) COMPRESS_RETURN_IF_ERROR(r.i32(&z, what));

  Expected<ir::QuantParams> params = ir::QuantParams::create(std::move(spec));
  if (!params) return r.fail_at(at, "{}: invalid quant params: {}", what, params.status().message());
  *out = std::make_shared<const ir::QuantParams>(std::move(*params));
  return Status::ok();
}

Status read_blob_ref(ByteReader& r, std::string_view what, BlobRef* blob) {
  blob->field_at = r.offset();
  COMPRESS_RETURN_IF_ERROR(r.u64(&blob->offset, what));
  COMPRESS_RETURN_IF_ERROR(r.u64(&blob->length, what));
  COMPRESS_RETURN_IF_ERROR(r.u64(&blob->checksum, what));
  return Status::ok();
}

// A dense, unquantized tensor: dtype, shape, blobref (sparse index tensors, annotation payloads).
Status read_dense_tensor(ByteReader& r, std::string_view what, IndexRecord* out) {
  int64_t numel = 0;
  COMPRESS_RETURN_IF_ERROR(read_dtype(r, what, &out->dtype));
  COMPRESS_RETURN_IF_ERROR(read_shape(r, what, &out->shape, &numel));
  return read_blob_ref(r, what, &out->blob);
}

Status read_value_type(ByteReader& r, std::string_view what, ir::ValueType* type) {
  COMPRESS_RETURN_IF_ERROR(read_dtype(r, what, &type->dtype));
  int64_t numel = 0;
  COMPRESS_RETURN_IF_ERROR(read_shape(r, what, &type->shape, &numel));
  const uint64_t at = r.offset();
  uint8_t has_quant = 0;
  COMPRESS_RETURN_IF_ERROR(r.u8(&has_quant, what));
  if (has_quant > 1) return r.fail_at(at, "{}: quant flag is {} (expected 0 or 1)", what, has_quant);
  if (has_quant) {
    COMPRESS_RETURN_IF_ERROR(read_quant(r, what, &type->quant));
    const Status fits = type->quant->check_shape(type->shape);
    if (!fits.is_ok()) return r.fail_at(at, "{}: quant params do not fit shape {}: {}", what,
                                        ir::shape_to_string(type->shape), fits.message());
  }
  return Status::ok();
}

Status read_tensor(ByteReader& r, size_t index, TensorRecord* t) {
  t->at = r.offset();
  COMPRESS_RETURN_IF_ERROR(r.string(&t->name, fmt::format("tensor #{} name", index)));
  const std::string what = fmt::format("tensor '{}'", t->name);
  COMPRESS_RETURN_IF_ERROR(read_dtype(r, what, &t->dtype));
  COMPRESS_RETURN_IF_ERROR(read_shape(r, what, &t->shape, &t->numel));
  const uint64_t stored_at = r.offset();
  COMPRESS_RETURN_IF_ERROR(r.u64(&t->stored_count, what));
  const uint64_t flags_at = r.offset();
  uint8_t flags = 0;
  COMPRESS_RETURN_IF_ERROR(r.u8(&flags, what));
  if (flags & ~(kTensorHasQuant | kTensorHasSparse)) {
    return r.fail_at(flags_at, "{}: unknown flag bits 0x{:02x}", what, flags);
  }
  if (flags & kTensorHasQuant) COMPRESS_RETURN_IF_ERROR(read_quant(r, what, &t->quant));
  t->sparse = (flags & kTensorHasSparse) != 0;
  if (!t->sparse && t->stored_count != static_cast<uint64_t>(t->numel)) {
    return r.fail_at(stored_at, "{}: stored element count {} != element count {} of its dense shape {}", what,
                     t->stored_count, t->numel, ir::shape_to_string(t->shape));
  }
  if (t->sparse) {
    const uint64_t format_at = r.offset();
    uint8_t format = 0;
    COMPRESS_RETURN_IF_ERROR(r.u8(&format, what));
    if (format == kSparseCsrBitmask) {
      t->csr_bitmask = true;
      format = static_cast<uint8_t>(ir::SparseFormat::kCsr);
    } else if (format < static_cast<uint8_t>(ir::SparseFormat::kMask) ||
               format > static_cast<uint8_t>(ir::SparseFormat::kBlock)) {
      return r.fail_at(format_at,
                       "{}: unknown sparse format code {} (expected 1..4: mask, csr, nm, block, or {}: csr bitmask)",
                       what, format, kSparseCsrBitmask);
    }
    t->format = static_cast<ir::SparseFormat>(format);
    // Layouts index rows with row_ptr[rows + 1]; keep that addition in range.
    if (!t->shape.empty() && t->shape[0] == std::numeric_limits<int64_t>::max()) {
      return r.fail_at(format_at, "{}: {} rows are too many for a sparse layout", what, t->shape[0]);
    }
    COMPRESS_RETURN_IF_ERROR(r.i64(&t->n, what));
    COMPRESS_RETURN_IF_ERROR(r.i64(&t->m, what));
    COMPRESS_RETURN_IF_ERROR(r.i64(&t->block_h, what));
    COMPRESS_RETURN_IF_ERROR(r.i64(&t->block_w, what));
    uint64_t count = 0;
    COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: index tensor count", what), kMinIndexBlobBytes));
    t->indices.resize(static_cast<size_t>(count));
    for (size_t i = 0; i < t->indices.size(); ++i) {
      COMPRESS_RETURN_IF_ERROR(read_dense_tensor(r, fmt::format("{} index tensor {}", what, i), &t->indices[i]));
    }
  }
  return read_blob_ref(r, what, &t->data);
}

Status read_attribute(ByteReader& r, const std::string& node_what, ir::AttributeMap* attrs) {
  const uint64_t at = r.offset();
  std::string name;
  COMPRESS_RETURN_IF_ERROR(r.string(&name, fmt::format("{} attribute name", node_what)));
  const std::string what = fmt::format("{} attribute '{}'", node_what, name);
  if (attrs->count(name)) return r.fail_at(at, "{}: duplicate attribute name", what);
  const uint64_t kind_at = r.offset();
  uint8_t kind = 0;
  COMPRESS_RETURN_IF_ERROR(r.u8(&kind, what));
  ir::Attribute value;
  switch (kind) {
    case kAttrInt: {
      int64_t v = 0;
      COMPRESS_RETURN_IF_ERROR(r.i64(&v, what));
      value = v;
      break;
    }
    case kAttrFloat: {
      double v = 0;
      COMPRESS_RETURN_IF_ERROR(r.f64(&v, what));
      value = v;
      break;
    }
    case kAttrString: {
      std::string v;
      COMPRESS_RETURN_IF_ERROR(r.string(&v, what));
      value = std::move(v);
      break;
    }
    case kAttrInts: {
      uint64_t count = 0;
      COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: list length", what), 8));
      std::vector<int64_t> v(static_cast<size_t>(count));
      for (int64_t& x : v) COMPRESS_RETURN_IF_ERROR(r.i64(&x, what));
      value = std::move(v);
      break;
    }
    case kAttrFloats: {
      uint64_t count = 0;
      COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: list length", what), 8));
      std::vector<double> v(static_cast<size_t>(count));
      for (double& x : v) COMPRESS_RETURN_IF_ERROR(r.f64(&x, what));
      value = std::move(v);
      break;
    }
    default:
      return r.fail_at(kind_at, "{}: unknown attribute kind code {} (expected 0..4)", what, kind);
  }
  attrs->emplace(std::move(name), std::move(value));
  return Status::ok();
}

// The annotation section (version 2): targets must name a node or value of
// the file's graph (node and value names were collected while reading it).
Status read_annotations(ByteReader& r, const std::unordered_set<std::string>& node_names,
                        const std::unordered_set<std::string>& value_names, Header* h) {
  using Target = ir::AnnotationTarget::Kind;
  uint64_t count = 0;
  COMPRESS_RETURN_IF_ERROR(r.count(&count, "annotation count", kMinAnnotationBytes));
  h->annotations.resize(static_cast<size_t>(count));
  std::set<std::tuple<std::string, Target, std::string>> seen;
  for (size_t i = 0; i < h->annotations.size(); ++i) {
    AnnotationRecord& a = h->annotations[i];
    a.at = r.offset();
    COMPRESS_RETURN_IF_ERROR(r.string(&a.kind, fmt::format("annotation #{} kind", i)));
    if (a.kind.empty()) return r.fail_at(a.at, "annotation #{}: empty kind", i);
    const uint64_t target_at = r.offset();
    uint8_t target = 0;
    COMPRESS_RETURN_IF_ERROR(r.u8(&target, fmt::format("annotation #{} ('{}') target", i, a.kind)));
    if (target > static_cast<uint8_t>(Target::kValue)) {
      return r.fail_at(target_at, "annotation #{} ('{}'): unknown target code {} (expected 0 graph, 1 node, 2 value)",
                       i, a.kind, target);
    }
    a.target = static_cast<Target>(target);
    const uint64_t name_at = r.offset();
    COMPRESS_RETURN_IF_ERROR(r.string(&a.target_name, fmt::format("annotation #{} ('{}') target name", i, a.kind)));
    const std::string what = annotation_what(a);
    if (a.target == Target::kNode && !node_names.count(a.target_name)) {
      return r.fail_at(name_at, "{}: the graph has no node '{}'", what, a.target_name);
    }
    if (a.target == Target::kValue && !value_names.count(a.target_name)) {
      return r.fail_at(name_at, "{}: the graph has no value '{}'", what, a.target_name);
    }
    if (!seen.emplace(a.kind, a.target, a.target_name).second) return r.fail_at(a.at, "{}: duplicate annotation", what);
    COMPRESS_RETURN_IF_ERROR(read_dense_tensor(r, what, &a.payload));
  }
  return Status::ok();
}

// Value indices: graph inputs first, then constants, then node outputs in
// node order. A node may only use values defined before it, which makes the
// file's node order a topological order by construction.
Status read_header(ByteReader& r, Header* h) {
  const uint64_t opset_at = r.offset();
  uint32_t op_set = 0;
  COMPRESS_RETURN_IF_ERROR(r.u32(&op_set, "op set version"));
  if (op_set == 0 || op_set > static_cast<uint32_t>(ir::kOpSetVersion)) {
    return Status(StatusCode::kUnsupported,
                  fmt::format("{}: byte {}: file uses op set version {}; this build supports op set version {}",
                              r.source(), opset_at, op_set, ir::kOpSetVersion));
  }
  COMPRESS_RETURN_IF_ERROR(r.string(&h->graph_name, "graph name"));

  uint64_t count = 0;
  COMPRESS_RETURN_IF_ERROR(r.count(&count, "tensor count", kMinTensorBytes));
  h->tensors.resize(static_cast<size_t>(count));
  std::unordered_map<std::string, size_t> tensor_names;
  for (size_t i = 0; i < h->tensors.size(); ++i) {
    COMPRESS_RETURN_IF_ERROR(read_tensor(r, i, &h->tensors[i]));
    auto [it, inserted] = tensor_names.emplace(h->tensors[i].name, i);
    if (!inserted) {
      return r.fail_at(h->tensors[i].at, "duplicate tensor name '{}' (tensors #{} and #{})", h->tensors[i].name,
                       it->second, i);
    }
  }

  std::unordered_set<std::string> value_names;
  auto claim_value_name = [&](const std::string& name, uint64_t at, std::string_view what) -> Status {
    if (name.empty()) return r.fail_at(at, "{}: empty value name", what);
    if (!value_names.insert(name).second) return r.fail_at(at, "{}: duplicate value name '{}'", what, name);
    return Status::ok();
  };

  COMPRESS_RETURN_IF_ERROR(r.count(&count, "graph input count", kMinInputBytes));
  h->inputs.resize(static_cast<size_t>(count));
  for (size_t i = 0; i < h->inputs.size(); ++i) {
    const uint64_t at = r.offset();
    InputRecord& in = h->inputs[i];
    COMPRESS_RETURN_IF_ERROR(r.string(&in.name, fmt::format("graph input #{} name", i)));
    COMPRESS_RETURN_IF_ERROR(claim_value_name(in.name, at, fmt::format("graph input #{}", i)));
    COMPRESS_RETURN_IF_ERROR(read_value_type(r, fmt::format("graph input '{}'", in.name), &in.type));
  }

  COMPRESS_RETURN_IF_ERROR(r.count(&count, "constant count", kConstantBytes));
  h->constants.resize(static_cast<size_t>(count));
  std::vector<int64_t> tensor_user(h->tensors.size(), -1);
  for (size_t i = 0; i < h->constants.size(); ++i) {
    const uint64_t at = r.offset();
    ConstantRecord& c = h->constants[i];
    COMPRESS_RETURN_IF_ERROR(r.string(&c.name, fmt::format("constant #{} name", i)));
    COMPRESS_RETURN_IF_ERROR(claim_value_name(c.name, at, fmt::format("constant #{}", i)));
    const uint64_t index_at = r.offset();
    COMPRESS_RETURN_IF_ERROR(r.u64(&c.tensor, fmt::format("constant '{}'", c.name)));
    if (c.tensor >= h->tensors.size()) {
      return r.fail_at(index_at, "constant '{}': tensor index {} is out of range (the file has {} tensors)", c.name,
                       c.tensor, h->tensors.size());
    }
    if (tensor_user[c.tensor] >= 0) {
      return r.fail_at(index_at, "constant '{}': tensor '{}' is already used by constant '{}'", c.name,
                       h->tensors[c.tensor].name, h->constants[tensor_user[c.tensor]].name);
    }
    tensor_user[c.tensor] = static_cast<int64_t>(i);
  }
  for (size_t i = 0; i < h->tensors.size(); ++i) {
    if (tensor_user[i] < 0) {
      return r.fail_at(h->tensors[i].at, "tensor '{}' is not used by any constant", h->tensors[i].name);
    }
  }

  uint64_t defined = h->inputs.size() + h->constants.size();
  std::unordered_set<std::string> node_names;
  COMPRESS_RETURN_IF_ERROR(r.count(&count, "node count", kMinNodeBytes));
  h->nodes.resize(static_cast<size_t>(count));
  for (size_t i = 0; i < h->nodes.size(); ++i) {
    NodeRecord& n = h->nodes[i];
    n.at = r.offset();
    COMPRESS_RETURN_IF_ERROR(r.string(&n.op, fmt::format("node #{} op", i)));
    const uint64_t name_at = r.offset();
    COMPRESS_RETURN_IF_ERROR(r.string(&n.name, fmt::format("node #{} name", i)));
    const std::string what = fmt::format("node '{}'", n.name);
    if (n.name.empty()) return r.fail_at(name_at, "node #{}: empty node name", i);
    if (!node_names.insert(n.name).second) return r.fail_at(name_at, "duplicate node name '{}'", n.name);
    if (ir::find_op(n.op) == nullptr) {
      return Status(StatusCode::kUnsupported,
                    fmt::format("{}: byte {}: {}: unknown op '{}' (not in op set version {} of this build)",
                                r.source(), n.at, what, n.op, ir::kOpSetVersion));
    }
    COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: input count", what), 8));
    n.inputs.resize(static_cast<size_t>(count));
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      const uint64_t at = r.offset();
      COMPRESS_RETURN_IF_ERROR(r.u64(&n.inputs[j], what));
      if (n.inputs[j] >= defined) {
        return r.fail_at(at, "{}: input {} refers to value #{}, but only {} values are defined before this node",
                         what, j, n.inputs[j], defined);
      }
    }
    COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: attribute count", what), kMinAttributeBytes));
    for (uint64_t j = 0; j < count; ++j) COMPRESS_RETURN_IF_ERROR(read_attribute(r, what, &n.attrs));
    COMPRESS_RETURN_IF_ERROR(r.count(&count, fmt::format("{}: output count", what), kMinOutputBytes));
    n.output_names.resize(static_cast<size_t>(count));
    n.output_types.resize(static_cast<size_t>(count));
    for (size_t j = 0; j < n.output_names.size(); ++j) {
      const uint64_t at = r.offset();
      COMPRESS_RETURN_IF_ERROR(r.string(&n.output_names[j], fmt::format("{} output {} name", what, j)));
      COMPRESS_RETURN_IF_ERROR(claim_value_name(n.output_names[j], at, fmt::format("{} output {}", what, j)));
      COMPRESS_RETURN_IF_ERROR(read_value_type(r, fmt::format("{} output '{}'", what, n.output_names[j]),
                                               &n.output_types[j]));
    }
    defined += n.output_names.size();
  }

  COMPRESS_RETURN_IF_ERROR(r.count(&count, "graph output count", 8));
  h->outputs.resize(static_cast<size_t>(count));
  for (size_t i = 0; i < h->outputs.size(); ++i) {
    const uint64_t at = r.offset();
    COMPRESS_RETURN_IF_ERROR(r.u64(&h->outputs[i], "graph output"));
    if (h->outputs[i] >= defined) {
      return r.fail_at(at, "graph output {} refers to value #{}, but the graph defines only {} values", i,
                       h->outputs[i], defined);
    }
  }
  if (h->version >= 2) COMPRESS_RETURN_IF_ERROR(read_annotations(r, node_names, value_names, h));
  if (!r.at_end()) {
    return r.fail_at(r.offset(), "{} unexpected bytes after the {}, before the end of the header", r.remaining(),
                     h->version >= 2 ? "annotations" : "graph outputs");
  }
  return Status::ok();
}

// ---- phase 3: data ranges ---------------------------------------------------

// Bytes for `count` elements, or nullopt when the byte count would not fit in
// 64 bits (including the round-up of packed 4-bit types).
std::optional<uint64_t> checked_storage_bytes(ir::DType dtype, uint64_t count) {
  const uint64_t bits = static_cast<uint64_t>(ir::dtype_bits(dtype));
  if (count > (std::numeric_limits<uint64_t>::max() - 7) / bits) return std::nullopt;
  return (count * bits + 7) / 8;
}

struct BlobCheck {
  const BlobRef* blob;
  std::string what;
  uint64_t expected_length;
  std::string expected_why;
};

Status check_data_ranges(const Header& h, const Preamble& p, const std::string& source) {
  std::vector<BlobCheck> blobs;
  auto add_dense = [&](const IndexRecord& t, const std::string& what) -> Status {
    // read_shape bounded the element count by int64; a 64-bit dtype could
    // still overflow the byte count.
    const std::optional<uint64_t> bytes = checked_storage_bytes(t.dtype, static_cast<uint64_t>(ir::numel(t.shape)));
    if (!bytes) return corrupt_file("{}: {}: size overflows", source, what);
    blobs.push_back({&t.blob, what, *bytes,
                     fmt::format("shape {} of {}", ir::shape_to_string(t.shape), ir::dtype_name(t.dtype))});
    return Status::ok();
  };
  for (const TensorRecord& t : h.tensors) {
    const std::string what = fmt::format("tensor '{}'", t.name);
    const std::optional<uint64_t> bytes = checked_storage_bytes(t.dtype, t.stored_count);
    if (!bytes) {
      return corrupt_file("{}: byte {}: {}: {} stored {} elements do not fit in 64 bits of bytes", source, t.at,
                          what, t.stored_count, ir::dtype_name(t.dtype));
    }
    // Header order: a tensor's index blobs come before its values.
    for (size_t i = 0; i < t.indices.size(); ++i) {
      COMPRESS_RETURN_IF_ERROR(add_dense(t.indices[i], fmt::format("{} index tensor {}", what, i)));
    }
    blobs.push_back({&t.data, what, *bytes,
                     fmt::format("{} elements of {}", t.stored_count, ir::dtype_name(t.dtype))});
  }
  // Annotation payloads follow the header order too: after every tensor.
  for (const AnnotationRecord& a : h.annotations) {
    COMPRESS_RETURN_IF_ERROR(add_dense(a.payload, annotation_what(a)));
  }

  uint64_t expected_offset = 0;
  for (const BlobCheck& c : blobs) {
    const BlobRef& b = *c.blob;
    auto fail = [&](const std::string& message) {
      return corrupt_file("{}: byte {}: {}: {}", source, b.field_at, c.what, message);
    };
    if (b.length != c.expected_length) {
      return fail(fmt::format("data length {} != {} bytes expected for {} (shape x dtype)", b.length,
                              c.expected_length, c.expected_why));
    }
    if (b.offset > std::numeric_limits<uint64_t>::max() - b.length) {
      return fail(fmt::format("data offset {} + length {} wraps around 2^64", b.offset, b.length));
    }
    const uint64_t end = b.offset + b.length;
    if (end > p.data_length) {
      return fail(fmt::format("data [{}, {}) points past the end of the {}-byte data section", b.offset, end,
                              p.data_length));
    }
    if (b.offset % kDataAlignment != 0) {
      return fail(fmt::format("data offset {} is not a multiple of {}", b.offset, kDataAlignment));
    }
    if (b.offset < expected_offset) {
      return fail(fmt::format("data at offset {} overlaps the previous tensor data, which ends at {}", b.offset,
                              expected_offset));
    }
    if (b.offset > expected_offset) {
      return fail(fmt::format("data at offset {} leaves a gap of {} bytes after the previous tensor data "
                              "(expected offset {})",
                              b.offset, b.offset - expected_offset, expected_offset));
    }
    expected_offset = align_up(end, kDataAlignment);  // end <= data_length, which is aligned
  }
  if (expected_offset != p.data_length) {
    return corrupt_file("{}: the last {} bytes of the data section (from data offset {}) belong to no tensor",
                        source, p.data_length - expected_offset, expected_offset);
  }
  return Status::ok();
}

// ---- phase 4: data ----------------------------------------------------------

// Where tensor bytes come from: a mapping (borrowed), a memory image
// (copied) or a file descriptor (read).
class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual Expected<std::shared_ptr<ir::Storage>> storage(uint64_t file_offset, uint64_t length) = 0;
  virtual Status read(uint64_t file_offset, void* dst, size_t length) = 0;
};

class MemorySource final : public DataSource {
 public:
  // With a `mapping`, tensors borrow the bytes and keep the mapping alive.
  MemorySource(const uint8_t* data, size_t size, std::shared_ptr<void> mapping)
      : data_(data), size_(size), mapping_(std::move(mapping)) {}

  Expected<std::shared_ptr<ir::Storage>> storage(uint64_t file_offset, uint64_t length) override {
    // Ranges were checked against the file size in phases 1 and 3.
    COMPRESS_INTERNAL_ASSERT(file_offset <= size_ && length <= size_ - file_offset);
    if (mapping_) {
      return ir::Storage::borrow(const_cast<uint8_t*>(data_) + file_offset, static_cast<size_t>(length), mapping_);
    }
    COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<ir::Storage> s, ir::Storage::allocate(static_cast<size_t>(length)));
    if (length) std::memcpy(s->data(), data_ + file_offset, static_cast<size_t>(length));
    return s;
  }
  Status read(uint64_t file_offset, void* dst, size_t length) override {
    COMPRESS_INTERNAL_ASSERT(file_offset <= size_ && length <= size_ - file_offset);
    if (length) std::memcpy(dst, data_ + file_offset, length);
    return Status::ok();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  std::shared_ptr<void> mapping_;
};

class FileSource final : public DataSource {
 public:
  FileSource(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Expected<std::shared_ptr<ir::Storage>> storage(uint64_t file_offset, uint64_t length) override {
    if (length > std::numeric_limits<size_t>::max()) return io_error("{}: tensor too large for memory", path_);
    COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<ir::Storage> s, ir::Storage::allocate(static_cast<size_t>(length)));
    COMPRESS_RETURN_IF_ERROR(pread_exact(fd_, file_offset, s->data(), static_cast<size_t>(length), path_));
    return s;
  }
  Status read(uint64_t file_offset, void* dst, size_t length) override {
    return pread_exact(fd_, file_offset, dst, length, path_);
  }

 private:
  int fd_;
  std::string path_;
};

// Padding is not covered by a checksum; requiring zeros there keeps the
// file canonical (one graph, one byte image) and catches stray writes.
Status check_zero_padding(DataSource& src, uint64_t begin, uint64_t end, const std::string& source,
                          std::string_view what) {
  uint8_t buf[kDataAlignment];
  while (begin < end) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(end - begin, sizeof buf));
    COMPRESS_RETURN_IF_ERROR(src.read(begin, buf, n));
    for (size_t i = 0; i < n; ++i) {
      if (buf[i] != 0) {
        return corrupt_file("{}: byte {}: padding after {} is not zero (0x{:02x})", source, begin + i, what, buf[i]);
      }
    }
    begin += n;
  }
  return Status::ok();
}

Expected<std::shared_ptr<ir::Storage>> load_blob(DataSource& src, const BlobRef& b, const Preamble& p,
                                                 bool verify, const std::string& source, std::string_view what) {
  const uint64_t file_offset = p.data_start + b.offset;
  COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<ir::Storage> storage, src.storage(file_offset, b.length));
  if (verify) {
    const uint64_t actual = checksum64(storage->data(), storage->nbytes());
    if (actual != b.checksum) {
      return corrupt_file("{}: {}: checksum mismatch in data at file bytes [{}, {}): stored {:016x}, computed "
                          "{:016x} (the tensor data is corrupt)",
                          source, what, file_offset, file_offset + b.length, b.checksum, actual);
    }
    const uint64_t end = file_offset + b.length;
    COMPRESS_RETURN_IF_ERROR(
        check_zero_padding(src, end, p.data_start + align_up(b.offset + b.length, kDataAlignment), source, what));
  }
  return storage;
}

// Note [Compact CSR indices] (cmf_writer.cpp): one u8 index tensor of
// ceil(numel / 8) bytes, bit i set when logical element i is stored, no bit
// set past numel, as many bits set as stored values. Everything it allocates
// is bounded by the blobs already checked against the file size.
Expected<std::vector<ir::Tensor>> csr_from_bitmask(const TensorRecord& t, const std::vector<ir::Tensor>& indices) {
  const int64_t numel = t.numel;
  // The writer uses the bitmask only from kCsrBitmaskMinElements elements on,
  // which also bounds the row count by the bitmask's size.
  COMPRESS_CHECK(!t.shape.empty() && numel >= kCsrBitmaskMinElements, StatusCode::kInvalidArgument,
                 "a csr bitmask needs rank >= 1 and at least {} elements (has {})", kCsrBitmaskMinElements, numel);
  const int64_t bytes = numel / 8 + (numel % 8 != 0 ? 1 : 0);  // numel may be near INT64_MAX: no numel + 7
  COMPRESS_CHECK(indices.size() == 1 && indices[0].dtype() == ir::DType::kU8 && indices[0].shape() == ir::Shape{bytes},
                 StatusCode::kInvalidArgument, "expected one u8 index tensor of shape [{}] (numel {} / 8, rounded up)",
                 bytes, numel);
  int64_t rows = 0, cols = 0;
  ir::matrix_dims(t.shape, &rows, &cols);
  COMPRESS_CHECK(cols <= std::numeric_limits<int32_t>::max(), StatusCode::kInvalidArgument,
                 "{} columns do not fit csr's i32 column indices", cols);
  const uint8_t* bits = indices[0].data<uint8_t>();
  int64_t set = 0;
  for (int64_t i = 0; i < bytes; ++i) set += __builtin_popcount(bits[i]);
  COMPRESS_CHECK(set == static_cast<int64_t>(t.stored_count), StatusCode::kInvalidArgument,
                 "{} bits set for {} stored values", set, t.stored_count);
  if (numel % 8 != 0) {
    COMPRESS_CHECK((bits[bytes - 1] >> (numel % 8)) == 0, StatusCode::kInvalidArgument,
                   "bits set past the last element");
  }
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor row_ptr, ir::Tensor::zeros(ir::DType::kI64, {rows + 1}));
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor col_idx, ir::Tensor::zeros(ir::DType::kI32, {set}));
  int64_t* rp = row_ptr.data<int64_t>();
  int32_t* ci = col_idx.data<int32_t>();
  int64_t k = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      if ((bits[i / 8] >> (i % 8)) & 1u) ci[k++] = static_cast<int32_t>(c);
    }
    rp[r + 1] = k;
  }
  return std::vector<ir::Tensor>{std::move(row_ptr), std::move(col_idx)};
}

Expected<ir::Tensor> load_tensor(DataSource& src, const TensorRecord& t, const Preamble& p, bool verify,
                                 const std::string& source) {
  const std::string what = fmt::format("tensor '{}'", t.name);
  auto wrap = [&](const Status& st, std::string_view stage) {
    return corrupt_file("{}: byte {}: {}: {}: {}", source, t.at, what, stage, st.message());
  };
  COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<ir::Storage> values, load_blob(src, t.data, p, verify, source, what));
  std::shared_ptr<const ir::SparseLayout> layout;
  if (t.sparse) {
    auto sparse = std::make_shared<ir::SparseLayout>();
    sparse->format = t.format;
    sparse->n = t.n;
    sparse->m = t.m;
    sparse->block_h = t.block_h;
    sparse->block_w = t.block_w;
    for (size_t i = 0; i < t.indices.size(); ++i) {
      const IndexRecord& idx = t.indices[i];
      const std::string index_what = fmt::format("{} index tensor {}", what, i);
      COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<ir::Storage> storage,
                                load_blob(src, idx.blob, p, verify, source, index_what));
      Expected<ir::Tensor> index = ir::Tensor::from_storage(idx.dtype, idx.shape, std::move(storage));
      if (!index) return wrap(index.status(), fmt::format("index tensor {}", i));
      sparse->indices.push_back(std::move(*index));
    }
    if (t.csr_bitmask) {
      Expected<std::vector<ir::Tensor>> csr = csr_from_bitmask(t, sparse->indices);
      if (!csr) return wrap(csr.status(), "invalid csr bitmask");
      sparse->indices = std::move(*csr);
    }
    if (t.stored_count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return corrupt_file("{}: {}: stored count {} exceeds int64", source, what, t.stored_count);
    }
    const Status st = sparse->validate(t.shape, static_cast<int64_t>(t.stored_count));
    if (!st.is_ok()) return wrap(st, fmt::format("invalid {} layout", ir::sparse_format_name(t.format)));
    layout = std::move(sparse);
  }
  if (t.quant) {
    const Status st = t.quant->check_shape(t.shape);
    if (!st.is_ok()) return wrap(st, "quant params do not fit the tensor");
  }
  Expected<ir::Tensor> tensor = ir::Tensor::from_storage(t.dtype, t.shape, std::move(values), t.quant, layout);
  if (!tensor) return wrap(tensor.status(), "cannot form the tensor");
  return tensor;
}

// ---- phase 5: graph ---------------------------------------------------------

// Note [Reading version 1]
// Version 1 had no annotation section: distill.taylor_importance and
// quant.ptq stored their data as constants no node reads, "importance/N" and
// "observed_range/V" (kV1AnnotationConstants). Such a constant becomes the
// annotation a version-2 writer would have written, and is not added as a
// constant, so old files work with today's accessors. A constant that some
// node reads, or that is a graph output, keeps its name and stays a
// constant. A stored importance for a node the file does not have (v1 never
// checked) is dropped with a warning naming it: it described no layer, and
// refusing it would make a file that loaded before unreadable.
const V1AnnotationConstant* v1_annotation(const Header& h, const std::vector<bool>& used, size_t constant) {
  if (h.version != 1 || used[h.inputs.size() + constant]) return nullptr;
  for (const V1AnnotationConstant& legacy : kV1AnnotationConstants) {
    if (h.constants[constant].name.rfind(legacy.prefix, 0) == 0) return &legacy;
  }
  return nullptr;
}

Expected<ir::Graph> build_graph(Header& h, std::vector<ir::Tensor>& tensors, std::vector<ir::Tensor>& payloads,
                                const std::string& source) {
  ir::Graph g;
  g.name = h.graph_name;
  std::vector<ir::Value*> values;
  values.reserve(h.inputs.size() + h.constants.size());
  auto wrap = [&](const Status& st, const std::string& what) {
    return corrupt_file("{}: {}: {}", source, what, st.message());
  };
  // Which values a node or the graph outputs read (phase 2 bounded every index).
  size_t num_values = h.inputs.size() + h.constants.size();
  for (const NodeRecord& n : h.nodes) num_values += n.output_names.size();
  std::vector<bool> used(num_values, false);
  for (const NodeRecord& n : h.nodes) {
    for (uint64_t index : n.inputs) used[index] = true;
  }
  for (uint64_t index : h.outputs) used[index] = true;

  for (InputRecord& in : h.inputs) {
    Expected<ir::Value*> v = g.add_input(in.name, std::move(in.type));
    if (!v) return wrap(v.status(), fmt::format("graph input '{}'", in.name));
    values.push_back(*v);
  }
  std::vector<std::pair<const V1AnnotationConstant*, size_t>> migrated;
  for (size_t i = 0; i < h.constants.size(); ++i) {
    ConstantRecord& c = h.constants[i];
    if (const V1AnnotationConstant* legacy = v1_annotation(h, used, i)) {
      migrated.emplace_back(legacy, i);
      values.push_back(nullptr);  // nothing reads it
      continue;
    }
    Expected<ir::Value*> v = g.add_constant(c.name, std::move(tensors[c.tensor]));
    if (!v) return wrap(v.status(), fmt::format("constant '{}'", c.name));
    values.push_back(*v);
  }
  std::unordered_map<std::string, const ir::Node*> node_by_name;
  for (NodeRecord& n : h.nodes) {
    std::vector<ir::Value*> inputs;
    inputs.reserve(n.inputs.size());
    for (uint64_t index : n.inputs) inputs.push_back(values[index]);
    ir::Node* node = g.add_node_unchecked(n.op, inputs, std::move(n.attrs), n.name, n.output_types, n.output_names);
    if (node == nullptr || node->name() != n.name || node->num_outputs() != n.output_names.size()) {
      return corrupt_file("{}: byte {}: node '{}' could not be recreated as stored", source, n.at, n.name);
    }
    node_by_name.emplace(n.name, node);
    for (size_t i = 0; i < node->num_outputs(); ++i) {
      if (node->output(i)->name() != n.output_names[i]) {
        return corrupt_file("{}: byte {}: node '{}' output '{}' could not be recreated under its stored name",
                            source, n.at, n.name, n.output_names[i]);
      }
      values.push_back(node->output(i));
    }
  }
  std::vector<ir::Value*> outputs;
  outputs.reserve(h.outputs.size());
  for (uint64_t index : h.outputs) outputs.push_back(values[index]);
  g.set_outputs(std::move(outputs));

  // Phase 2 checked that every node or value target exists.
  using Target = ir::AnnotationTarget;
  auto target_of = [&](Target::Kind kind, const std::string& name) -> std::optional<Target> {
    if (kind == Target::Kind::kGraph) return Target::graph(name);
    if (kind == Target::Kind::kValue) return Target::value(*g.find_value(name));
    auto it = node_by_name.find(name);
    if (it == node_by_name.end()) return std::nullopt;
    return Target::node(*it->second);
  };
  for (size_t i = 0; i < h.annotations.size(); ++i) {
    const AnnotationRecord& a = h.annotations[i];
    const Status st = g.annotations().set(a.kind, *target_of(a.target, a.target_name), std::move(payloads[i]));
    if (!st.is_ok()) return corrupt_file("{}: byte {}: {}: {}", source, a.at, annotation_what(a), st.message());
  }
  for (const auto& [legacy, i] : migrated) {
    const ConstantRecord& c = h.constants[i];
    const std::string name = c.name.substr(std::strlen(legacy->prefix));
    const std::optional<Target> target = target_of(legacy->target, name);
    if (!target) {
      log_warning("{}: dropping version-1 constant '{}': it holds the stored importance of node '{}', which is not "
                  "in the graph",
                  source, c.name, name);
      continue;
    }
    const Status st = g.annotations().set(legacy->kind, *target, std::move(tensors[c.tensor]));
    if (!st.is_ok()) {
      return corrupt_file("{}: version-1 constant '{}' cannot become a {} annotation: {}", source, c.name,
                          legacy->kind, st.message());
    }
  }

  const Status verified = ir::verify(g);
  if (!verified.is_ok()) return corrupt_file("{}: the stored graph is invalid: {}", source, verified.message());
  return g;
}

Expected<ir::Graph> read_cmf(const uint8_t* header_bytes, const Preamble& p, DataSource& src,
                             const std::string& source, const ParseOptions& options) {
  if (options.verify_header_checksum) {
    const uint64_t actual = checksum64(header_bytes, static_cast<size_t>(p.header_length));
    if (actual != p.header_checksum) {
      return corrupt_file("{}: header checksum mismatch: stored {:016x}, computed {:016x} (the header bytes [{}, "
                          "{}) are corrupt)",
                          source, p.header_checksum, actual, kHeaderOffset, kHeaderOffset + p.header_length);
    }
  }
  Header h;
  h.version = p.version;
  ByteReader reader(header_bytes, static_cast<size_t>(p.header_length), kHeaderOffset, source);
  COMPRESS_RETURN_IF_ERROR(read_header(reader, &h));
  COMPRESS_RETURN_IF_ERROR(check_data_ranges(h, p, source));
  if (options.verify_data_checksums) {
    COMPRESS_RETURN_IF_ERROR(
        check_zero_padding(src, kHeaderOffset + p.header_length, p.data_start, source, "the header"));
  }
  std::vector<ir::Tensor> tensors;
  tensors.reserve(h.tensors.size());
  for (const TensorRecord& t : h.tensors) {
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor tensor, load_tensor(src, t, p, options.verify_data_checksums, source));
    tensors.push_back(std::move(tensor));
  }
  std::vector<ir::Tensor> payloads;
  payloads.reserve(h.annotations.size());
  for (const AnnotationRecord& a : h.annotations) {
    const std::string what = annotation_what(a);
    COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<ir::Storage> storage,
                              load_blob(src, a.payload.blob, p, options.verify_data_checksums, source, what));
    Expected<ir::Tensor> t = ir::Tensor::from_storage(a.payload.dtype, a.payload.shape, std::move(storage));
    if (!t) return corrupt_file("{}: byte {}: {}: cannot form the payload: {}", source, a.at, what, t.status().message());
    payloads.push_back(std::move(*t));
  }
  return build_graph(h, tensors, payloads, source);
}

// Runs `body`, turning any exception (allocation failure, an IR assertion)
// into a Status: the reader's callers get an error, never an unwinding.
template <typename Body>
Expected<ir::Graph> guarded(const std::string& source, Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return io_error("{}: out of memory while reading the model", source);
  } catch (const Error& e) {
    return e.status().with_context(source);
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, fmt::format("{}: unexpected error while reading: {}", source, e.what()));
  }
}

Expected<ir::Graph> parse_memory(const uint8_t* data, size_t size, std::shared_ptr<void> mapping,
                                 const std::string& source, const ParseOptions& options) {
  uint8_t prefix[kPreambleSize] = {};
  if (size) std::memcpy(prefix, data, std::min(size, kPreambleSize));
  Preamble p;
  COMPRESS_RETURN_IF_ERROR(check_preamble(prefix, size, source, &p));
  MemorySource src(data, size, std::move(mapping));
  return read_cmf(data + kHeaderOffset, p, src, source, options);
}

}  // namespace

namespace cmf {
Expected<ir::Graph> parse_image(const uint8_t* data, size_t size, const std::string& source_name,
                                const ParseOptions& options) {
  return guarded(source_name, [&] { return parse_memory(data, size, nullptr, source_name, options); });
}
}  // namespace cmf

Expected<ir::Graph> parse_cmf(const uint8_t* data, size_t size, const std::string& source_name) {
  return cmf::parse_image(data, size, source_name, {});
}

Expected<ir::Graph> load_cmf(const std::string& path, const CmfLoadOptions& options) {
  ParseOptions parse;
  parse.verify_data_checksums = options.verify_checksums;
  return guarded(path, [&]() -> Expected<ir::Graph> {
    if (options.use_mmap) {
      COMPRESS_ASSIGN_OR_RETURN(MappedFile mapped, map_file_private(path));
      return parse_memory(mapped.data, mapped.size, mapped.mapping, path, parse);
    }
    COMPRESS_ASSIGN_OR_RETURN(OpenFile file, open_for_reading(path));
    uint8_t prefix[kPreambleSize] = {};
    COMPRESS_RETURN_IF_ERROR(
        pread_exact(file.fd.get(), 0, prefix, static_cast<size_t>(std::min<uint64_t>(file.size, kPreambleSize)), path));
    Preamble p;
    COMPRESS_RETURN_IF_ERROR(check_preamble(prefix, file.size, path, &p));
    std::vector<uint8_t> header(static_cast<size_t>(p.header_length));
    COMPRESS_RETURN_IF_ERROR(pread_exact(file.fd.get(), kHeaderOffset, header.data(), header.size(), path));
    FileSource src(file.fd.get(), path);
    return read_cmf(header.data(), p, src, path, parse);
  });
}

}  // namespace compress::io
