// commands.hpp: the unsubrelay subcommands (SPEC "Command line").
#pragma once

#include <string>
#include <vector>

namespace unsubrelay::app {

// Exit statuses from sysexits.h, shared by every subcommand: scripts can tell
// bad usage from a bad file from bad rows.
inline constexpr int exit_usage = 64;
inline constexpr int exit_dataerr = 65;  // some rows were bad (the good ones were kept)
inline constexpr int exit_config = 78;

/// Dispatches argv (without the program name) and returns the exit status.
int main_with_args(const std::vector<std::string>& args);

/// `run -c FILE`: the relay in the foreground until SIGTERM.
int run_relay(const std::string& config_path);

/// `suppression list|add|remove|import` (suppression_commands.cpp): args as main_with_args gets them.
int suppression_main(const std::vector<std::string>& args);
/// `unsubrelay contact show|erase` (contact_commands.cpp).
int contact_main(const std::vector<std::string>& args);

}  // namespace unsubrelay::app
