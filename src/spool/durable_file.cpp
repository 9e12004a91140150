// durable_file.cpp: crash-safe file writes.
#include "unsubrelay/spool/durable_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace unsubrelay::spool {

std::optional<std::string> pread_all(int fd, std::uint64_t offset, std::uint64_t length, std::string* why,
                                     bool* unreadable) {
  std::string out(length, '\0');
  std::uint64_t done = 0;
  while (done < length) {
    const auto n = ::pread(fd, out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (why) *why = n < 0 ? std::strerror(errno) : "unexpected end of file";
      if (unreadable && n < 0) *unreadable = true;
      return std::nullopt;
    }
    done += static_cast<std::uint64_t>(n);
  }
  return out;
}

std::optional<std::string> read_range(const std::string& path, std::uint64_t offset, std::uint64_t length,
                                      std::string* why) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (why) *why = std::strerror(errno);
    return std::nullopt;
  }
  auto out = pread_all(fd, offset, length, why);
  ::close(fd);
  return out;
}

std::optional<std::string> read_file(const std::string& path, std::string* why) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    if (why) *why = fmt::format("{}: {}", path, std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return std::nullopt;
  }
  auto out = pread_all(fd, 0, static_cast<std::uint64_t>(st.st_size), why);
  ::close(fd);
  return out;
}

std::string write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::strerror(errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::string fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fmt::format("open {}: {}", dir, std::strerror(errno));
  std::string err;
  if (::fsync(fd) != 0) err = fmt::format("fsync {}: {}", dir, std::strerror(errno));
  ::close(fd);
  return err;
}

std::string write_file_atomically(const std::string& dir, const std::string& name, std::string_view content) {
  const auto tmp = dir + "/." + name + ".tmp";
  const auto dest = dir + "/" + name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("create {}: {}", tmp, std::strerror(errno));
  auto err = write_all(fd, content);
  if (err.empty() && ::fsync(fd) != 0) err = std::strerror(errno);
  ::close(fd);
  if (err.empty() && ::rename(tmp.c_str(), dest.c_str()) != 0) err = std::strerror(errno);
  if (!err.empty()) {
    ::unlink(tmp.c_str());
    return fmt::format("write {}: {}", dest, err);
  }
  return fsync_directory(dir);
}

std::string make_directories(const std::string& path) {
  // Each directory made here is fsynced into its parent: a new directory's
  // name is durable only then (POSIX), and a spool whose messages/ vanished
  // after a power cut would lose every message in it.
  std::filesystem::path made;
  for (const auto& part : std::filesystem::path(path)) {
    made /= part;
    if (::mkdir(made.c_str(), 0777) == 0) {  // the umask decides, as before
      const auto parent = made.parent_path();
      if (auto err = fsync_directory(parent.empty() ? "." : parent.string()); !err.empty()) return err;
    } else if (errno != EEXIST) {
      return fmt::format("create directory {}: {}", made.string(), std::strerror(errno));
    }
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    return fmt::format("create directory {}: {}", path, ec ? ec.message() : "not a directory");
  }
  return {};
}

}  // namespace unsubrelay::spool
