// loaders.hpp: the section loaders that live in their own files (private to src/config).
#pragma once

#include "section.hpp"

namespace unsubrelay::config::detail {

/// http: the unsubscribe service's listeners (plain and HTTPS), limits and exemptions.
void load_http(Section& s, Http& h, Errors& errors);
/// tls: the profile every TLS context uses.
void load_tls(Section& s, Tls& t);

}  // namespace unsubrelay::config::detail
