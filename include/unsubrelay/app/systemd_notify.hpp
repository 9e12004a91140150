// systemd_notify.hpp: sd_notify(3) for Type=notify services, without libsystemd,
// and log lines the journal reads with their priority.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/formatter.h>

namespace unsubrelay::app {

/// Sends state ("READY=1", "STOPPING=1", "RELOADING=1", "STATUS=...") to
/// $NOTIFY_SOCKET. A no-op when not started by systemd.
void sd_notify(std::string_view state);

/// True when stderr is connected to the journal ($JOURNAL_STREAM names its device and inode).
bool stderr_is_journal();

/// Lines for the journal: no timestamp of our own (the journal has one), a
/// "<N>" priority prefix (sd-daemon(3)) so `journalctl -p warning` filters,
/// and Postfix's "warning: "/"error: "/"fatal: " words before such messages.
std::unique_ptr<spdlog::formatter> journal_formatter();

}  // namespace unsubrelay::app
