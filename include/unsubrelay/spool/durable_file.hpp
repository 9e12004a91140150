// durable_file.hpp: the POSIX steps that make a write survive a crash.
//
// write, fsync the file, rename into place, fsync the directory: only after
// the last step is a file guaranteed to exist after a power loss (the
// directory entry is data too). Errors come back as messages, not exceptions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace unsubrelay::spool {

/// Writes all bytes to fd, retrying on EINTR and short writes. Returns "" or the error.
std::string write_all(int fd, std::string_view bytes);

/// fsync()s a directory so a rename or unlink in it is durable.
std::string fsync_directory(const std::string& dir);

/// Writes content to dir/.name.tmp, fsyncs, renames to dir/name, fsyncs dir.
std::string write_file_atomically(const std::string& dir, const std::string& name, std::string_view content);

/// length bytes at offset of fd, or nullopt and why; unreadable is set on an
/// I/O error (the file may be fine), not on a short file (damage).
std::optional<std::string> pread_all(int fd, std::uint64_t offset, std::uint64_t length, std::string* why,
                                     bool* unreadable = nullptr);
/// length bytes at offset of the file at path, or nullopt and why.
std::optional<std::string> read_range(const std::string& path, std::uint64_t offset, std::uint64_t length,
                                      std::string* why);
/// The whole file at path, or nullopt and why.
std::optional<std::string> read_file(const std::string& path, std::string* why = nullptr);

/// Creates a directory and its parents, each fsynced into its parent (umask mode).
std::string make_directories(const std::string& path);

}  // namespace unsubrelay::spool
