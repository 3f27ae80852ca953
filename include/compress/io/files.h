// The files a command reads and writes: regular files only, sizes bounded before reading, outputs that never replace an input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compress/support/status.h"

namespace compress::io {

// Note [Inputs and destinations]
// Every file compress reads from outside is opened as a regular file: a FIFO
// would block forever, /dev/zero would never end, a directory reads as
// empty. Every destination is checked before any work starts, so a run that
// would fail to write (a missing folder, a directory in the way, a device
// node that the atomic rename would replace) fails in a second instead of
// after an hour of calibration, and a destination that is one of the inputs
// (the same file by device and inode, through any link) is refused: a failed
// or even a successful run must never replace its own input.

// Reads a whole regular file, refusing one larger than `max_bytes` before
// reading any of it.
Expected<std::string> read_file(const std::string& path, uint64_t max_bytes);

// Ok when `path` is a regular file that can be opened for reading; otherwise
// why not (missing, a directory, a FIFO or device, a symlink loop, no
// permission), naming the path.
Status check_readable_file(const std::string& path);

// Whether `a` and `b` name the same existing file (same device and inode, so
// hard links and symlinks count).
bool same_file(const std::string& a, const std::string& b);

// Ok when `path` can be written as an output file: its folder exists, `path`
// is not a directory or another non-regular file, and it is not the same
// file as any of `inputs`. `what` names the destination in messages
// ("--output", "output:").
Status check_output_file(const std::string& path, const std::vector<std::string>& inputs, std::string_view what);

// Ok when `dir` can hold output files: an existing directory, or a path
// whose parent folder exists (it is created when written); not a file.
Status check_output_folder(const std::string& dir, std::string_view what);

}  // namespace compress::io
