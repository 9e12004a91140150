// fuzz_tenant.cpp: the parsing tenants added (SPEC Part 3), on any bytes:
// the domains of a From: field and their owners, the key id a token names,
// the tenant parameter the HTTP router takes out of a request target, and a
// message's smtp.tenant_header (smtp/tenant_intake.hpp) and its removal.
// Properties: no crash; a domain is never two tenants'; a token's unverified
// key id is the verified one whenever it verifies; a target without the
// parameter keeps every other byte; an accepted header names a known tenant;
// removing the header removes bytes.
#include <cstdint>
#include <string>

#include "unsubrelay/http/tenant_router.hpp"
#include "unsubrelay/mime/scanner.hpp"
#include "unsubrelay/smtp/tenant_intake.hpp"
#include "unsubrelay/tenant/directory.hpp"
#include "unsubrelay/token/token.hpp"

namespace {

using namespace unsubrelay;

const tenant::Directory& directory() {
  static const tenant::Directory d = [] {
    config::Config c;
    for (auto [id, domain] : {std::pair{"acme", "acme.example"}, {"beta", "news.acme.example"}, {"gamma", "g.example"}}) {
      config::Tenant t;
      t.id = id;
      t.sender_domains = {domain};
      c.tenants.push_back(t);
    }
    return tenant::Directory(c);
  }();
  return d;
}

void check_domains(std::string_view input) {
  for (const auto& domain : tenant::from_domains(input)) {
    int owners = 0;
    for (const char* id : {"acme", "beta", "gamma", "default"}) owners += directory().domain_allowed(id, domain);
    if (owners > 1) __builtin_trap();
  }
  (void)tenant::address_domain(input);
}

void check_token(std::string_view input) {
  static const token::KeySet keys = [] {
    std::vector<std::string> errors;
    return *token::KeySet::from_keys({{"acme1", std::string(32, 'a')}, {"k2", std::string(32, 'b')}}, errors);
  }();
  const auto id = token::key_id_of(input);
  const auto verified = token::verify(input, keys, 1'800'000'000);
  if (verified.claims && verified.claims->key_id != id) __builtin_trap();
}

void check_target(const std::string& target) {
  std::string value;
  bool present = false;
  const auto out = http::without_parameter(target, "tenant", value, present);
  if (!present && out != target && target.find('?') == std::string::npos) __builtin_trap();
  std::string again;
  bool twice = false;
  (void)http::without_parameter(out, "tenant", again, twice);
  if (twice) __builtin_trap();  // taken out, it is not there any more
}

void check_header(std::string_view input) {
  const auto verdict = smtp::check_tenant_content(mime::scan(input), "", "X-Tenant", "n@acme.example", directory());
  if (!verdict.refusal && !directory().known(verdict.tenant)) __builtin_trap();
  // Removing the field removes bytes, and only when the header is readable.
  if (const auto stripped = mime::without_field(input, "X-Tenant"); stripped && stripped->size() >= input.size()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: check_domains(input); break;
    case 1: check_token(input); break;
    case 3: check_header(input); break;
    default: check_target(std::string(input)); break;
  }
  return 0;
}
