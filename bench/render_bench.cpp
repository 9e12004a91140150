// render_bench.cpp: cost of a per-recipient copy against a plain memory copy.
//
// For a 10 KB and a 100 KB campaign message (multipart/alternative with QP
// text and HTML carrying placeholders, plus a base64 attachment), it builds
// the render plan once, then renders 1, 10 and 1,000 copies: with the plan
// alone (splicing) and with the full per-recipient work (uid, HMAC token,
// URL). The peer measured in the same run is a plain std::string copy of
// the message (memcpy into a fresh buffer), the floor any copy-per-recipient
// design pays.
//
//   ./build/release/bench/render_bench            (docs/performance.md)
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/mime/rewriter.hpp"
#include "unsubrelay/token/token.hpp"

using namespace unsubrelay;
using Clock = std::chrono::steady_clock;

namespace {

std::string make_message(std::size_t target) {
  std::string html_line = "<p>Weekly offers: caf=C3=A9 cr=C3=A8me, 20% off everything in the store this week=\r\n"
                          " only, see the catalogue for details.</p>\r\n";
  std::string text_line = "Weekly offers: caf=C3=A9 cr=C3=A8me, 20% off everything this week only.\r\n";
  std::string attachment;
  for (std::size_t i = 0; attachment.size() < target / 3; ++i) {
    attachment += "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\r\n";
  }
  std::string html, text;
  while (html.size() < target / 2) html += html_line;
  while (text.size() < target / 6) text += text_line;
  return "From: News <news@example.com>\r\nTo: list@example.org\r\nSubject: offers\r\n"
         "Message-ID: <bench@example.com>\r\nX-Campaign-Id: 222222222\r\nX-Launch-List-Id: 111111111\r\n"
         "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
         "--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
         "--a\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
         text + "Unsubscribe: *|UNSUBSCRIBE|*\r\n"
         "--a\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
         html + "<a href=3D\"*|UNSUBSCRIBE|*\">Unsubscribe</a> <a href=3D\"https://x/p?c=3D$cid$&l=3D$llid$&u=3D$uid$\">prefs</a>\r\n"
         "--a--\r\n--m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
         attachment + "--m--\r\n";
}

template <typename F>
double seconds_for(F&& f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main() {
  config::Unsubscribe settings;
  settings.base_url = "https://unsub.example.com";
  std::vector<std::string> errors;
  auto keys = token::KeySet::from_keys({{"k1", std::string(32, 'k')}}, errors);
  const mime::Rewriter rewriter(settings, *keys);

  std::cout << "| message | copies | memcpy MB/s | splice MB/s | splice / memcpy | full copy MB/s | full copies/s | full / memcpy |\n";
  std::cout << "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (std::size_t size : {10 * 1024, 100 * 1024}) {
    const auto message = make_message(size);
    const auto plan = rewriter.plan(message, "QUEUEID");
    if (!plan.rewritten()) {
      std::cerr << "bench message was not rewritten\n";
      return 1;
    }
    for (std::size_t copies : {1, 10, 1000}) {
      // Repeat small runs so each measurement lasts long enough to time.
      const std::size_t rounds = std::max<std::size_t>(1, 100000 / copies / (size / 10240));
      std::size_t sink = 0, bytes = 0;
      const double t_memcpy = seconds_for([&] {
        for (std::size_t r = 0; r < rounds; ++r)
          for (std::size_t i = 0; i < copies; ++i) {
            const std::string out(message);  // one allocation, one pass: what a plain copy costs
            sink += static_cast<unsigned char>(out[i % out.size()]);
          }
      });
      mime::RecipientValues v{"https://unsub.example.com/u/AQJrMQ2OtCR_yI3qnyWbp2saWnUJMjIyMjIyMjIyCTExMTExMTExMWsGGJMAAAAAurSha-sunkLYPlOI94TGaA",
                              "", "DY60JH_IjeqfJZunaxpadQ"};
      const double t_splice = seconds_for([&] {
        for (std::size_t r = 0; r < rounds; ++r)
          for (std::size_t i = 0; i < copies; ++i) {
            const auto out = plan.render(v);
            bytes += out.size();
            sink += static_cast<unsigned char>(out[i % out.size()]);
          }
      });
      const double t_full = seconds_for([&] {
        for (std::size_t r = 0; r < rounds; ++r)
          for (std::size_t i = 0; i < copies; ++i) {
            const auto out = rewriter.copy(plan, fmt::format("user{}@example.org", i), 1'800'000'000);
            sink += static_cast<unsigned char>(out[i % out.size()]);
          }
      });
      const double n = static_cast<double>(rounds * copies);
      const double out_mb = static_cast<double>(bytes) / 1e6;
      const double in_mb = n * static_cast<double>(message.size()) / 1e6;
      std::cout << fmt::format("| {} KB | {} | {:.0f} | {:.0f} | {:.2f} | {:.0f} | {:.0f} | {:.2f} |\n", size / 1024,
                               copies, in_mb / t_memcpy, out_mb / t_splice, (out_mb / t_splice) / (in_mb / t_memcpy),
                               out_mb / t_full, n / t_full, (out_mb / t_full) / (in_mb / t_memcpy));
      if (sink == 42) std::cout << "";  // keep the work observable
    }
  }
  return 0;
}
