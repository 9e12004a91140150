// fuzz_mime.cpp: the scanner and the render plan on any bytes, with mimetic
// parsing the input and every copy too (its throws are caught: known bugs).
#include <cstdint>
#include <string>

#include <mimetic/mimetic.h>

#include "unsubrelay/mime/render_plan.hpp"
#include "unsubrelay/mime/scanner.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace unsubrelay::mime;
  const std::string message(reinterpret_cast<const char*>(data), size);
  PlanOptions options;
  options.mailto = true;
  options.list_id_domain = "lists.example.com";
  const auto plan = build_plan(message, options, "QUEUEID");
  const auto copy = plan.render({"https://u.example/u/T", "u+T@u.example", "UID"});
  if (!plan.campaign() && copy != message) __builtin_trap();  // transactional mail must pass unchanged
  const auto again = scan(copy);
  (void)again;
  if (size < 4096) {  // mimetic is super-linear on big headers; keep the fuzzer fast
    try {
      mimetic::MimeEntity reference(copy.begin(), copy.end());
      (void)reference.body().parts().size();
    } catch (...) {
    }
  }
  return 0;
}
