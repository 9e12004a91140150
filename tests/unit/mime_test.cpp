// mime_test.cpp: the scanner against mimetic (the independent reference), and
// properties of every rendered copy: same structure, same attachments, no
// placeholder left, valid encodings; malformed input stays fast and safe.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <mimetic/mimetic.h>

#include "cpu_budget.hpp"

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/mime/codec.hpp"
#include "unsubrelay/mime/render_plan.hpp"
#include "unsubrelay/mime/scanner.hpp"

using namespace unsubrelay;
using namespace unsubrelay::mime;

namespace {

std::string read_sample(const std::string& name) {
  std::ifstream in(std::string(UNSUBRELAY_TEST_DATA) + "/" + name, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::vector<std::string> well_formed = {"campaign-alternative-qp.eml", "campaign-base64-html.eml",
                                              "campaign-no-placeholder.eml", "transactional.eml",
                                              "nested-mixed-rfc822.eml", "utf16-part.eml"};

// "depth type/subtype" lines, depth first, not looking into message/rfc822.
void shape(const Part& p, int depth, std::vector<std::string>& out) {
  out.push_back(std::to_string(depth) + " " + p.type + "/" + p.subtype);
  for (const auto& c : p.children) shape(c, depth + 1, out);
}

void mimetic_shape(const mimetic::MimeEntity& e, int depth, std::vector<std::string>& out) {
  const auto& ct = e.header().contentType();
  std::string type = to_lower(std::string(ct.type().begin(), ct.type().end()));
  std::string subtype = to_lower(std::string(ct.subtype().begin(), ct.subtype().end()));
  if (type.empty()) type = "text", subtype = "plain";
  out.push_back(std::to_string(depth) + " " + type + "/" + subtype);
  if (type == "multipart") {
    for (const auto* child : e.body().parts()) mimetic_shape(*child, depth + 1, out);
  }
}

std::vector<std::string> our_shape(const std::string& message) {
  const auto s = scan(message);
  std::vector<std::string> out;
  shape(s.root, 0, out);
  return out;
}

std::vector<std::string> reference_shape(const std::string& message) {
  mimetic::MimeEntity e(message.begin(), message.end());
  std::vector<std::string> out;
  mimetic_shape(e, 0, out);
  return out;
}

void leaves(const Part& p, std::vector<const Part*>& out) {
  if (p.children.empty()) out.push_back(&p);
  for (const auto& c : p.children) leaves(c, out);
}

void mimetic_leaves(const mimetic::MimeEntity& e, std::vector<const mimetic::MimeEntity*>& out) {
  if (e.body().parts().empty()) out.push_back(&e);
  for (const auto* c : e.body().parts()) mimetic_leaves(*c, out);
}

std::string decoded_body(const std::string& message, const Part& p) {
  const auto raw = std::string_view(message).substr(p.body_begin, p.end - p.body_begin);
  if (p.encoding == "quoted-printable") return qp_decode(raw);
  if (p.encoding == "base64") return base64_decode(raw).value_or("<bad base64>");
  return std::string(raw);
}

std::string mimetic_decoded(const mimetic::MimeEntity& e) {
  const std::string body(e.body().begin(), e.body().end());
  const auto& mech = e.header().contentTransferEncoding().mechanism();
  const auto enc = to_lower(std::string(mech.begin(), mech.end()));
  std::string out;
  if (enc == "quoted-printable") {
    mimetic::QP::Decoder qp;
    mimetic::decode(body.begin(), body.end(), qp, std::back_inserter(out));
  } else if (enc == "base64") {
    mimetic::Base64::Decoder b64;
    mimetic::decode(body.begin(), body.end(), b64, std::back_inserter(out));
  } else {
    out = body;
  }
  return out;
}

// mimetic's QP decoder writes LF line breaks (docs/mime.md); compare line
// breaks as LF and without the trailing ones.
std::string strip_trailing_newlines(std::string s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    out.push_back(s[i]);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

RecipientValues values(int n) {
  return {"https://unsub.example.com/u/TOKEN" + std::to_string(n) + "x", "u+TOKEN" + std::to_string(n) + "@unsub.example.com",
          "UID" + std::to_string(n)};
}

PlanOptions options() {
  PlanOptions o;
  o.mailto = true;
  o.list_id_domain = "lists.example.com";
  return o;
}

std::string header_of(const std::string& message) { return message.substr(0, message.find("\r\n\r\n") + 2); }

}  // namespace

TEST(Scanner, AgreesWithMimeticOnStructure) {
  for (const auto& name : well_formed) {
    const auto message = read_sample(name);
    EXPECT_EQ(our_shape(message), reference_shape(message)) << name;
  }
}

TEST(Scanner, AgreesWithMimeticOnDecodedLeaves) {
  for (const auto& name : well_formed) {
    const auto message = read_sample(name);
    const auto ours = scan(message);
    std::vector<const Part*> our_leaves;
    leaves(ours.root, our_leaves);
    mimetic::MimeEntity e(message.begin(), message.end());
    std::vector<const mimetic::MimeEntity*> ref_leaves;
    mimetic_leaves(e, ref_leaves);
    ASSERT_EQ(our_leaves.size(), ref_leaves.size()) << name;
    for (std::size_t i = 0; i < our_leaves.size(); ++i) {
      if (our_leaves[i]->type == "message") continue;  // mimetic parses these further; we leave them alone
      EXPECT_EQ(strip_trailing_newlines(decoded_body(message, *our_leaves[i])),
                strip_trailing_newlines(mimetic_decoded(*ref_leaves[i])))
          << name << " leaf " << i;
    }
  }
}

TEST(Scanner, FindsPartsAtAnyDepth) {
  const auto s = scan(read_sample("nested-mixed-rfc822.eml"));
  ASSERT_TRUE(s.ok);
  EXPECT_TRUE(s.notes.empty());
  ASSERT_EQ(s.root.children.size(), 4u);
  const auto& related = s.root.children[0];
  EXPECT_EQ(related.subtype, "related");
  EXPECT_EQ(related.children[0].subtype, "alternative");
  EXPECT_EQ(related.children[0].children[1].subtype, "html");
  EXPECT_EQ(s.root.children[1].type, "message");
  EXPECT_TRUE(s.root.children[2].attachment);
}

TEST(RenderPlan, TheUserScenario) {
  const auto message = read_sample("campaign-alternative-qp.eml");
  const auto plan = build_plan(message, options(), "QUEUEID");
  ASSERT_TRUE(plan.rewritten());
  EXPECT_EQ(plan.email_id(), "222222222");
  EXPECT_EQ(plan.launch_list_id(), "111111111");
  const auto copy = plan.render(values(1));
  const auto header = header_of(copy);
  EXPECT_NE(header.find("List-Unsubscribe: <https://unsub.example.com/u/TOKEN1x>, "
                        "<mailto:u+TOKEN1@unsub.example.com>\r\n"),
            std::string::npos)
      << header;
  EXPECT_NE(header.find("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), std::string::npos);
  EXPECT_NE(header.find("List-Id: <222222222.lists.example.com>\r\n"), std::string::npos);
  for (const char* gone : {"X-Campaign-Id", "X-Launch-List-Id", "DKIM-Signature", "mailto:old@example.com"}) {
    EXPECT_EQ(header.find(gone), std::string::npos) << gone;
  }
  // The HTML part, decoded: every placeholder replaced, the QP-split and =2A forms too.
  const auto s = scan(copy);
  const auto& html = s.root.children[0].children[1];
  const auto decoded = decoded_body(copy, html);
  EXPECT_EQ(decoded.find("UNSUBSCRIBE"), std::string::npos);
  EXPECT_NE(decoded.find("<a href=\"https://unsub.example.com/u/TOKEN1x\">Unsubscribe</a>"), std::string::npos);
  EXPECT_NE(decoded.find("email_id=222222222&amp;launchlist_id=111111111&amp;uid=UID1\">"), std::string::npos);
  EXPECT_EQ(std::count(decoded.begin(), decoded.end(), 'T') >= 3, true);
  EXPECT_NE(decoded.find("Split placeholder: https://unsub.example.com/u/TOKEN1x and encoded "
                         "https://unsub.example.com/u/TOKEN1x</p>"),
            std::string::npos);
}

TEST(RenderPlan, PropertiesOfEveryCopy) {
  for (const auto& name : well_formed) {
    const auto message = read_sample(name);
    const auto plan = build_plan(message, options(), "QUEUEID");
    const auto before = scan(message);
    std::vector<const Part*> before_leaves;
    leaves(before.root, before_leaves);
    for (int n = 1; n <= 3; ++n) {
      const auto copy = plan.render(values(n));
      if (!plan.campaign()) {
        EXPECT_EQ(copy, message) << name << ": transactional mail must pass byte for byte";
        continue;
      }
      SCOPED_TRACE(name);
      // Same structure, by our scanner and by mimetic.
      EXPECT_EQ(our_shape(copy), our_shape(message));
      EXPECT_EQ(reference_shape(copy), our_shape(copy));
      const auto after = scan(copy);
      std::vector<const Part*> after_leaves;
      leaves(after.root, after_leaves);
      ASSERT_EQ(after_leaves.size(), before_leaves.size());
      for (std::size_t i = 0; i < after_leaves.size(); ++i) {
        const auto& a = *after_leaves[i];
        const auto& b = *before_leaves[i];
        const auto a_body = copy.substr(a.body_begin, a.end - a.body_begin);
        const auto b_body = message.substr(b.body_begin, b.end - b.body_begin);
        const bool rewritable = a.is_text() && !a.attachment && !a.charset.starts_with("utf-16");
        if (!rewritable) {
          EXPECT_EQ(a_body, b_body) << "leaf " << i << " (" << a.type << "/" << a.subtype << ") must be byte-identical";
          continue;
        }
        const auto text = decoded_body(copy, a);
        for (const char* ph : {"*|UNSUBSCRIBE|*", "{{unsubscribe_url}}", "$cid$", "$llid$", "$uid$"}) {
          EXPECT_EQ(text.find(ph), std::string::npos) << ph << " left in leaf " << i;
        }
        if (a.encoding == "quoted-printable") {
          std::size_t start = 0;
          while (start < a_body.size()) {
            auto nl = a_body.find("\r\n", start);
            if (nl == std::string::npos) nl = a_body.size();
            EXPECT_LE(nl - start, 76u);
            start = nl + 2;
          }
        }
      }
      for (std::size_t i = 0; i < copy.size(); ++i) {
        if (copy[i] == '\n' && message.find('\r') != std::string::npos) {
          ASSERT_TRUE(i > 0 && copy[i - 1] == '\r') << "bare LF at " << i;
        }
      }
      EXPECT_NE(copy.find("TOKEN" + std::to_string(n) + "x"), std::string::npos);
    }
  }
}

TEST(RenderPlan, FooterWhenNoPlaceholder) {
  const auto message = read_sample("campaign-no-placeholder.eml");
  auto o = options();
  const auto plan = build_plan(message, o, "Q");
  EXPECT_TRUE(plan.footer_added());
  const auto copy = plan.render(values(1));
  EXPECT_NE(copy.find("This week: nothing new.\r\n\r\nTo stop receiving these emails, unsubscribe: "
                      "https://unsub.example.com/u/TOKEN1x\r\n"),
            std::string::npos);
  EXPECT_NE(copy.find("<a href=\"https://unsub.example.com/u/TOKEN1x\">unsubscribe</a>.</p>\r\n</BODY>"),
            std::string::npos);
  o.body_link = config::BodyLink::reject;
  EXPECT_TRUE(build_plan(message, o, "Q").refused());
  o.body_link = config::BodyLink::warn;
  const auto warned = build_plan(message, o, "Q");
  EXPECT_FALSE(warned.footer_added());
  EXPECT_EQ(warned.render(values(1)).find("To stop receiving"), std::string::npos);
}

// Issue 22: the wrapping multipart/mixed's boundary occurs nowhere in the
// message, found in one pass however many look-alikes the message carries
// (trying _0, _1, ... in turn took one search of the message per look-alike).
TEST(RenderPlan, WrappingBoundaryNeverCollidesAndIsFoundInOnePass) {
  std::string body;
  for (int n = 0; n < 100000; ++n) body += "--=_unsubrelay_footer_" + std::to_string(n) + "\r\n";
  const std::string message = "X-Campaign-Id: c\r\nContent-Type: application/pdf\r\n\r\n" + body;
  const auto started = std::clock();
  const auto copy = build_plan(message, options(), "Q").render(values(1));
  EXPECT_LT(double(std::clock() - started) / CLOCKS_PER_SEC, 5.0);  // quadratic took minutes
  const auto scanned = scan(copy);
  ASSERT_EQ(scanned.root.subtype, "mixed");
  EXPECT_EQ(scanned.root.boundary, "=_unsubrelay_footer_000000");  // 5 digits at most in the message
  EXPECT_EQ(message.find(scanned.root.boundary), std::string::npos);
  ASSERT_EQ(scanned.root.children.size(), 2u);
  EXPECT_EQ(scanned.root.children[0].type, "application");
  EXPECT_EQ(copy.substr(scanned.root.children[0].body_begin, body.size()), body);
}

TEST(RenderPlan, WrappingBoundaryStaysWithinRfc2046sSeventyCharacters) {
  // Look-alikes with 1,000 digits (a subscriber's name field can carry one into their copy)
  // and the first fixed-width forms: the boundary is still short and still absent.
  const std::string digits(1000, '7');
  std::string body = "--=_unsubrelay_footer_" + digits + "\r\n";
  body += "--=_unsubrelay_footer_x00000000\r\n--=_unsubrelay_footer_x00000001\r\n";
  const std::string message = "X-Campaign-Id: c\r\nContent-Type: application/pdf\r\n\r\n" + body;
  const auto copy = build_plan(message, options(), "Q").render(values(1));
  const auto scanned = scan(copy);
  ASSERT_EQ(scanned.root.subtype, "mixed");
  EXPECT_EQ(scanned.root.boundary, "=_unsubrelay_footer_x00000002");
  EXPECT_LE(scanned.root.boundary.size(), 70u);
  EXPECT_EQ(message.find(scanned.root.boundary), std::string::npos);
  ASSERT_EQ(scanned.root.children.size(), 2u);
}

TEST(RenderPlan, LaunchDefaultsToTheQueueIdAndHtmlValuesAreEscaped) {
  const std::string message =
      "X-Campaign-Id: a<b>\"c\r\nContent-Type: text/html\r\n\r\n<a href=\"x?c=$cid$\">$cid$</a> *|UNSUBSCRIBE|*\r\n";
  const auto plan = build_plan(message, options(), "6B0611CE7D490497");
  EXPECT_EQ(plan.launch_list_id(), "6B0611CE7D490497");
  RecipientValues v{"https://u.example/u/T?a=1&b=2", "", "U"};
  const auto copy = plan.render(v);
  EXPECT_NE(copy.find("<a href=\"x?c=a&lt;b&gt;&quot;c\">a&lt;b&gt;&quot;c</a> https://u.example/u/T?a=1&amp;b=2"),
            std::string::npos)
      << copy;
}

TEST(RenderPlan, MalformedSamplesAreSafe) {
  {
    const auto message = read_sample("malformed-missing-boundary.eml");
    const auto plan = build_plan(message, options(), "Q");
    EXPECT_TRUE(plan.rewritten());
    EXPECT_FALSE(plan.notes().empty());
    const auto copy = plan.render(values(1));
    EXPECT_EQ(copy.find("*|UNSUBSCRIBE|*"), std::string::npos);
  }
  {
    const auto message = read_sample("malformed-bad-base64.eml");
    const auto plan = build_plan(message, options(), "Q");
    const auto copy = plan.render(values(1));
    EXPECT_NE(copy.find("PGh0bWw+|||not base64!!!"), std::string::npos);  // left untouched
    EXPECT_NE(copy.find("plain link: https://unsub.example.com/u/TOKEN1x"), std::string::npos);
  }
  {
    const auto message = read_sample("lf-only.eml");
    const auto copy = build_plan(message, options(), "Q").render(values(1));
    EXPECT_NE(copy.find("Link: https://unsub.example.com/u/TOKEN1x\n"), std::string::npos);
  }
}

TEST(RenderPlan, HostileInputStaysLinearAndNeverCrashes) {
  std::vector<std::pair<std::string, std::string>> inputs;
  inputs.emplace_back("1 MB line", "X-Campaign-Id: 1\r\n\r\n" + std::string(1 << 20, 'a') + " *|UNSUBSCRIBE|*\r\n");
  inputs.emplace_back("4 MB header", "X-Campaign-Id: 1\r\nX-Big: " + std::string(4 << 20, 'h') + "\r\n\r\nbody\r\n");
  std::string nested = "X-Campaign-Id: 1\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 100000; ++i) nested += "--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  inputs.emplace_back("100,000 nested levels", nested);
  inputs.emplace_back("NUL bytes", std::string("X-Campaign-Id: 1\r\nSub\0ject: x\r\n\r\nbo\0dy *|UNSUBSCRIBE|*\r\n", 55));
  inputs.emplace_back("8-bit header", "X-Campaign-Id: 1\r\nSubject: caf\xc3\xa9\r\n\r\n$uid$\r\n");
  inputs.emplace_back("no header end", "X-Campaign-Id: 1\r\nSubject: x");
  inputs.emplace_back("empty", "");
  std::string many = "X-Campaign-Id: 1\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 50000; ++i) many += "--b\r\n\r\n*|UNSUBSCRIBE|*\r\n";
  inputs.emplace_back("50,000 parts", many);
  // Linear work takes about a second under AddressSanitizer; quadratic work on
  // these sizes (10^10 steps) would take minutes.
  for (const auto& [what, message] : inputs) {
    const test_env::CpuBudget budget(10.0, what);
    const auto plan = build_plan(message, options(), "Q");
    const auto copy = plan.render(values(1));
    EXPECT_FALSE(copy.empty() && !message.empty()) << what;
  }
}

// A 7bit/8bit line near 998 characters with a placeholder would pass the RFC
// 5322 limit once the URL is in: that part goes out as quoted-printable
// instead (its header says so), every line stays short, and the decoded text
// is the original with the values in.
TEST(RenderPlan, LongIdentityLinesAreReencodedAsQuotedPrintable) {
  const std::string long_html = std::string(900, 'h') + "<a href=\"*|UNSUBSCRIBE|*\">x</a>" + std::string(50, 'h');
  const std::string short_text = "Unsubscribe: *|UNSUBSCRIBE|*";
  const std::string multipart =
      "From: a@example.com\r\nX-Campaign-Id: 7\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + short_text + "\r\n"
      "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nX-Part: kept\r\n\r\n"
      "caf\xc3\xa9 " + long_html + "\r\n--b--\r\n";
  const auto values1 = values(1);
  const auto copy = build_plan(multipart, options(), "Q").render(values1);
  const auto s = scan(copy);
  ASSERT_TRUE(s.ok);
  ASSERT_EQ(s.root.children.size(), 2u);
  const auto& plain = s.root.children[0];
  const auto& html = s.root.children[1];
  EXPECT_EQ(plain.encoding, "7bit");  // short lines: left as they were
  EXPECT_EQ(decoded_body(copy, plain), "Unsubscribe: " + values1.url);
  EXPECT_EQ(html.encoding, "quoted-printable");
  EXPECT_EQ(html.charset, "utf-8");
  EXPECT_NE(copy.find("X-Part: kept\r\n"), std::string::npos);
  EXPECT_EQ(copy.find("Content-Transfer-Encoding: 8bit"), std::string::npos);
  const auto expected = "caf\xc3\xa9 " + std::string(900, 'h') + "<a href=\"" + values1.url + "\">x</a>" +
                        std::string(50, 'h');
  EXPECT_EQ(decoded_body(copy, html), expected);
  std::size_t longest = 0, at = 0;
  while (at < copy.size()) {
    auto end = copy.find("\r\n", at);
    if (end == std::string::npos) end = copy.size();
    longest = std::max(longest, end - at);
    at = end + 2;
  }
  EXPECT_LE(longest, 998u);

  // The same for a single-part message: the top header's encoding changes.
  const std::string single = "From: a@example.com\r\nX-Campaign-Id: 7\r\nContent-Type: text/html\r\n"
                             "Content-Transfer-Encoding: 7bit\r\n\r\n" + long_html + "\r\n";
  const auto copy2 = build_plan(single, options(), "Q").render(values1);
  const auto s2 = scan(copy2);
  ASSERT_TRUE(s2.ok);
  EXPECT_EQ(s2.root.encoding, "quoted-printable");
  EXPECT_EQ(copy2.find("Content-Transfer-Encoding: 7bit"), std::string::npos);
  EXPECT_NE(header_of(copy2).find("List-Unsubscribe: <" + values1.url + ">"), std::string::npos);
  EXPECT_EQ(decoded_body(copy2, s2.root), std::string(900, 'h') + "<a href=\"" + values1.url + "\">x</a>" +
                                              std::string(50, 'h') + "\r\n");
}
