// fuzz_smtp.cpp: the SMTP session, command parser and DATA decoder on any bytes.
#include <cstdint>
#include <string>

#include "unsubrelay/smtp/dot_unstuffer.hpp"
#include "unsubrelay/smtp/session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace unsubrelay::smtp;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  SessionPolicy policy;
  policy.hostname = "relay.test";
  policy.client_address = "192.0.2.1";
  policy.client_trusted = size % 2 == 0;
  policy.tls_available = true;
  policy.auth_available = true;
  policy.auth_requires_tls = size % 3 == 0;
  policy.mailto_domain = "unsub.test";  // u+TOKEN@unsub.test: unsubscribe by mail
  policy.verify_password = [](const std::string& u, const std::string& p) { return u == "u" && p == "p"; };
  Session session(policy);
  std::size_t pos = 0;
  while (pos < input.size() && session.state() != SessionState::closed) {
    auto nl = input.find('\n', pos);
    if (nl == std::string_view::npos) nl = input.size();
    auto line = input.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    const auto step = session.on_line(line);
    for (const auto& r : step.replies) {
      const auto wire = r.wire();
      // A reply line never carries a bare CR or LF from the client.
      for (std::size_t i = 0; i < wire.size(); ++i) {
        if (wire[i] == '\n' && (i == 0 || wire[i - 1] != '\r')) __builtin_trap();
      }
    }
    if (step.action == Action::start_tls) session.on_tls_established();
    if (step.action == Action::receive_data) {
      DotUnstuffer decoder({1 << 16, 1000});
      std::string out;
      pos += decoder.feed(input.substr(std::min(pos, input.size())), out);
      if (out.size() > (1 << 16)) __builtin_trap();
      session.on_data_end({decoder.done() ? std::optional<std::string>("ID") : std::nullopt, std::nullopt});
    }
  }
  return 0;
}
