// Byte layout of the .cmf container (docs/cmf-format.md): shared by reader, writer, tests and fuzzer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::io::cmf {

// "\x89CMF\r\n\x1a\n": the high byte and the CR/LF/^Z catch transfers that
// strip the 8th bit or translate line endings (the PNG trick).
inline constexpr std::array<uint8_t, 8> kMagic = {0x89, 'C', 'M', 'F', '\r', '\n', 0x1a, '\n'};

// The fixed preamble, offsets in bytes from the start of the file.
inline constexpr size_t kMagicOffset = 0;
inline constexpr size_t kVersionOffset = 8;          // u32
inline constexpr size_t kFlagsOffset = 12;           // u32, must be 0
inline constexpr size_t kHeaderLengthOffset = 16;    // u64
inline constexpr size_t kHeaderChecksumOffset = 24;  // u64, checksum64 of the header bytes
inline constexpr size_t kDataLengthOffset = 32;      // u64, bytes in the data section
inline constexpr size_t kReservedOffset = 40;        // u64, must be 0
inline constexpr size_t kPreambleSize = 48;
inline constexpr size_t kHeaderOffset = kPreambleSize;

// The header is parsed in memory; the cap keeps a hostile length from
// turning into a huge allocation (real headers are a few hundred KiB).
inline constexpr uint64_t kMaxHeaderLength = uint64_t{64} << 20;
// Every data blob starts at a multiple of this (relative to the data
// section, which itself starts at a multiple of it), so mmapped tensors are
// as aligned as owned ones.
inline constexpr uint64_t kDataAlignment = 64;

// Tensor record flag bits.
inline constexpr uint8_t kTensorHasQuant = 1;
inline constexpr uint8_t kTensorHasSparse = 2;

// Codes stored in the file; kept separate from the in-memory enums so that
// reordering an enum can never silently change the format.
inline constexpr uint8_t kAttrInt = 0;
inline constexpr uint8_t kAttrFloat = 1;
inline constexpr uint8_t kAttrString = 2;
inline constexpr uint8_t kAttrInts = 3;
inline constexpr uint8_t kAttrFloats = 4;
inline constexpr uint8_t kGranularityPerTensor = 0;
inline constexpr uint8_t kGranularityPerAxis = 1;
inline constexpr uint8_t kGranularityPerGroup = 2;
// Sparse formats use ir::SparseFormat's values (1 mask, 2 csr, 3 nm, 4 block).
// On-disk only: a CSR layout whose indices are stored as one bitmask of the
// logical shape (bit i, LSB first, set when element i is stored); the reader
// rebuilds ir::SparseLayout's row_ptr/col_idx. See Note [Compact CSR indices].
inline constexpr uint8_t kSparseCsrBitmask = 130;
// Tensors below this element count keep the plain CSR indices (the saving
// would be a few bytes inside a 64-byte aligned blob).
inline constexpr int64_t kCsrBitmaskMinElements = 4096;

// Smallest encodings, used to bound counts before anything is allocated.
inline constexpr uint64_t kMinStringBytes = 8;
inline constexpr uint64_t kBlobRefBytes = 24;  // offset, length, checksum
inline constexpr uint64_t kMinTensorBytes = kMinStringBytes + 1 + 1 + 8 + 1 + kBlobRefBytes;
inline constexpr uint64_t kMinIndexBlobBytes = 1 + 1 + kBlobRefBytes;
inline constexpr uint64_t kMinValueTypeBytes = 1 + 1 + 1;
inline constexpr uint64_t kMinInputBytes = kMinStringBytes + kMinValueTypeBytes;
inline constexpr uint64_t kConstantBytes = kMinStringBytes + 8;
inline constexpr uint64_t kMinNodeBytes = 2 * kMinStringBytes + 3 * 8;
inline constexpr uint64_t kMinAttributeBytes = kMinStringBytes + 1 + 8;
inline constexpr uint64_t kMinOutputBytes = kMinStringBytes + kMinValueTypeBytes;
// kind, target code, target name, then the payload encoded like an index tensor.
inline constexpr uint64_t kMinAnnotationBytes = 2 * kMinStringBytes + 1 + kMinIndexBlobBytes;

// Version 1 had no annotation section: passes kept their data as constants
// that no node reads, named by these prefixes. The reader turns such
// constants of a version-1 file into annotations (docs/cmf-format.md,
// "Version 1"); only the reader knows these names now.
struct V1AnnotationConstant {
  const char* prefix;  // then the node name (kNode) or the graph key (kGraph)
  const char* kind;
  ir::AnnotationTarget::Kind target;
};
inline constexpr V1AnnotationConstant kV1AnnotationConstants[] = {
    {"importance/", ir::kChannelImportanceKind, ir::AnnotationTarget::Kind::kNode},
    {"observed_range/", ir::kObservedRangeKind, ir::AnnotationTarget::Kind::kGraph},
};

constexpr uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

// The 64-bit hash used for the header and every data blob (see
// docs/cmf-format.md for the exact definition). Not cryptographic: it
// catches corruption, not tampering.
uint64_t checksum64(const void* data, size_t size);

// Reader knobs beyond CmfLoadOptions. The fuzzer turns checksums off so that
// mutated inputs reach the structural checks behind them.
struct ParseOptions {
  bool verify_header_checksum = true;
  bool verify_data_checksums = true;
};
Expected<ir::Graph> parse_image(const uint8_t* data, size_t size, const std::string& source_name,
                                const ParseOptions& options);

}  // namespace compress::io::cmf
