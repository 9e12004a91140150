// fuzz_http.cpp: the unsubscribe service's request handling on any request
// (method, target, content type, body from the input): never a crash, never
// a 500, and GET never records an event.
#include <cstdint>
#include <filesystem>
#include <string>

#include "unsubrelay/http/service.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace unsubrelay;
  static config::Config cfg;
  static const token::KeySet keys = [] {
    std::vector<std::string> errors;
    return *token::KeySet::from_keys({{"k1", std::string(32, 'k')}}, errors);
  }();
  static std::unique_ptr<store::Store> db = [] {
    std::string error;
    const auto path = std::filesystem::temp_directory_path() / "unsubrelay-fuzz-http.db";
    std::filesystem::remove(path);
    auto s = store::open_sqlite(path.string(), error);
    s->set_erasure_keys(store::ErasureKeys(keys));  // DELETE /api/v1/contacts/... erases for real
    return s;
  }();
  static http::Service service(cfg, keys, *db, "<title>{{title}}</title>{{content}}",
                               http::ApiKeyMatcher({{"key", http::all_scopes, 1}}), [] { return true; });

  // input: METHOD \n TARGET \n CONTENT-TYPE \n AUTHORIZATION \n BODY
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto field = [&]() {
    const auto nl = in.find('\n');
    const auto f = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return std::string(f);
  };
  http::Request r;
  r.method = field();
  r.target = field();
  r.content_type = field();
  r.authorization = field();
  r.body = std::string(in);
  r.client_ip = "192.0.2.1";
  const auto before = db->events_since(0, 0, 1000000)->size();
  const auto response = service.handle(r);
  if (response.status >= 500 && response.status != 503) __builtin_trap();
  if ((r.method == "GET" || r.method == "HEAD") && db->events_since(0, 0, 1000000)->size() != before) __builtin_trap();
  return 0;
}
