// clock.hpp: the wall clock in whole Unix seconds, as the store, the spool and the logs count time.
#pragma once

#include <ctime>

namespace unsubrelay {

inline long long now_seconds() { return static_cast<long long>(std::time(nullptr)); }

}  // namespace unsubrelay
