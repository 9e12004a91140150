// section.hpp: the pieces every configuration section's loader uses (private to src/config).
//
// A Section wraps one YAML map: each typed getter records the keys it read,
// and finish() reports every key nobody asked for, so a misspelt key is an
// error instead of a silently ignored setting. A new top-level section gets
// its own file with a load_NAME(Section&, ...) function, registered in
// config.cpp's load_node().
#pragma once

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::config::detail {

using Errors = std::vector<ConfigError>;

int line_of(const YAML::Node& node);
bool is_integer(const std::string& s);

class Section {
 public:
  Section(const YAML::Node& node, std::string path, Errors& errors)
      : node_(node), path_(std::move(path)), errors_(errors) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      error(node_, path_, "must be a map of keys");
      valid_ = false;
    }
  }

  bool present(const char* key) const { return static_cast<bool>(lookup(key)); }
  std::string path(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  YAML::Node raw(const char* key) {
    seen_.insert(key);
    return lookup(key);
  }

  /// A key this section does not take here (a tenant's installation-wide
  /// key): reported when present, then invisible to every getter.
  void refuse(const char* key, const std::string& message) {
    if (auto n = raw(key)) error(n, path(key), message);
    refused_.insert(key);
  }

  void error(const YAML::Node& at, const std::string& path, const std::string& message) {
    errors_.push_back({path, at ? line_of(at) : line_of(node_), message});
  }

  void string(const char* key, std::string& out) {
    auto n = raw(key);
    if (!n) return;
    if (!n.IsScalar()) return error(n, path(key), "must be a string");
    out = n.Scalar();
  }

  void boolean(const char* key, bool& out) {
    auto n = raw(key);
    if (!n) return;
    const auto s = n.IsScalar() ? n.Scalar() : std::string();
    if (s == "true" || s == "yes") {
      out = true;
    } else if (s == "false" || s == "no") {
      out = false;
    } else {
      error(n, path(key), "must be true or false");
    }
  }

  template <typename Int>
  void integer(const char* key, Int& out, std::uint64_t min, std::uint64_t max) {
    auto n = raw(key);
    if (!n) return;
    const auto s = n.IsScalar() ? n.Scalar() : std::string();
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!is_integer(s) || ec != std::errc{} || end != s.data() + s.size()) {
      return error(n, path(key), "must be a whole number");
    }
    if (v < min || v > max) {
      return error(n, path(key), fmt::format("must be between {} and {}", min, max));
    }
    out = static_cast<Int>(v);
  }

  void number(const char* key, double& out, double min, double max) {
    auto n = raw(key);
    if (!n) return;
    try {
      const double v = n.as<double>();
      if (v < min || v > max) return error(n, path(key), fmt::format("must be between {} and {}", min, max));
      out = v;
    } catch (const YAML::Exception&) {
      error(n, path(key), "must be a number");
    }
  }

  template <typename Enum>
  void choice(const char* key, Enum& out, std::initializer_list<std::pair<const char*, Enum>> options) {
    auto n = raw(key);
    if (!n) return;
    const auto s = n.IsScalar() ? n.Scalar() : std::string();
    std::string names;
    for (const auto& [name, value] : options) {
      if (s == name) {
        out = value;
        return;
      }
      names += names.empty() ? name : std::string(" | ") + name;
    }
    error(n, path(key), "must be one of: " + names);
  }

  void strings(const char* key, std::vector<std::string>& out) {
    auto n = raw(key);
    if (!n) return;
    if (!n.IsSequence()) return error(n, path(key), "must be a list of strings");
    out.clear();
    for (std::size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar()) {
        error(n[i], fmt::format("{}[{}]", path(key), i), "must be a string");
        continue;
      }
      out.push_back(n[i].Scalar());
    }
  }

  /// Reports keys present in the file that no getter asked for.
  void finish() {
    if (!valid_ || !node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const auto key = kv.first.Scalar();
      if (!seen_.count(key)) error(kv.first, path(key.c_str()), "unknown key");
    }
  }

 private:
  /// The value at key, or an undefined node (false in a boolean test) when absent.
  YAML::Node lookup(const char* key) const {
    if (!valid_ || !node_ || !node_.IsMap() || refused_.count(key)) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& map = node_;
    return map[key];
  }

  YAML::Node node_;
  std::string path_;
  Errors& errors_;
  std::set<std::string> seen_;
  std::set<std::string> refused_;
  bool valid_ = true;
};

std::optional<Endpoint> parse_endpoint(const std::string& text);
/// A list of host:port listeners; each bad entry is reported with its index.
void endpoints(Section& s, const char* key, std::vector<Endpoint>& out);
/// A list of CIDR networks; each bad entry is reported with its index.
void networks(Section& s, const char* key, std::vector<Network>& out);
/// A file the relay must read: it must exist and be readable now.
void readable_file(Section& s, const char* key, std::string& out);
std::string default_hostname();
/// A host name as DNS has it: labels of letters, digits and hyphens, dot-separated.
bool valid_domain(std::string_view d);
/// Why a file named in the configuration cannot be read whole here ("" = it
/// can): not a regular file, or more than max_bytes. Reads at most
/// max_bytes + 1 bytes, so a name like /dev/zero costs nothing.
std::string unreadable_whole(const std::string& path, std::uintmax_t max_bytes);

}  // namespace unsubrelay::config::detail
