// systemd_notify.hpp: sd_notify(3) for Type=notify services, without libsystemd.
#pragma once

#include <string_view>

namespace unsubrelay::app {

/// Sends state ("READY=1", "STOPPING=1", "RELOADING=1", "STATUS=...") to
/// $NOTIFY_SOCKET. A no-op when not started by systemd.
void sd_notify(std::string_view state);

}  // namespace unsubrelay::app
