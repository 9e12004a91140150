// signer.cpp: RFC 6376 relaxed canonicalisation and signing with OpenSSL 3.
#include "unsubrelay/dkim/signer.hpp"

#include <ctime>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::dkim {

struct Signer::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

namespace {

constexpr const char* signed_fields[] = {"from", "to", "subject", "date", "message-id", "mime-version",
                                         "content-type", "list-unsubscribe", "list-unsubscribe-post"};
/// Signed when the copy has one (unsubscribe.feedback_id): Gmail reads Feedback-ID only from a signed header.
constexpr const char* signed_when_present[] = {"feedback-id"};

std::string b64(const unsigned char* data, std::size_t size) {
  std::string out((size + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

struct Field {
  std::string name;
  std::string value;  // raw, folding included, without the final CRLF
};

std::vector<Field> header_fields(std::string_view header) {
  std::vector<Field> fields;
  std::size_t pos = 0;
  while (pos < header.size()) {
    auto nl = header.find("\r\n", pos);
    if (nl == std::string_view::npos) nl = header.size();
    const auto line = header.substr(pos, nl - pos);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !fields.empty()) {
      fields.back().value += "\r\n";
      fields.back().value += line;
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
      fields.push_back({std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
    pos = nl + 2;
  }
  return fields;
}

}  // namespace

std::string relaxed_header(std::string_view name, std::string_view value) {
  // RFC 6376 §3.4.2: lower-case name, unfold, runs of WSP to one SP, trim.
  std::string out = to_lower(trim(name)) + ":";
  std::string v;
  bool space = false;
  for (char c : value) {
    if (c == '\r' || c == '\n') continue;
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !v.empty()) v.push_back(' ');
    space = false;
    v.push_back(c);
  }
  return out + v + "\r\n";
}

std::string relaxed_body(std::string_view body) {
  // RFC 6376 §3.4.4: WSP runs to one SP, no WSP at line ends, no empty lines at the end.
  std::string out;
  out.reserve(body.size());
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto nl = body.find("\r\n", pos);
    const bool last = nl == std::string_view::npos;
    if (last) nl = body.size();
    auto line = body.substr(pos, nl - pos);
    std::string l;
    bool space = false;
    for (char c : line) {
      if (c == ' ' || c == '\t') {
        space = true;
        continue;
      }
      if (space) l.push_back(' ');
      space = false;
      l.push_back(c);
    }
    out += l;
    out += "\r\n";
    pos = nl + 2;
  }
  while (out.ends_with("\r\n\r\n")) out.resize(out.size() - 2);
  if (out == "\r\n") out.clear();
  return out;
}

std::shared_ptr<const Signer> Signer::load(const config::Dkim& settings, std::string& error) {
  FILE* f = std::fopen(settings.key_file.c_str(), "r");
  if (!f) {
    error = fmt::format("dkim {}: cannot open {}", settings.domain, settings.key_file);
    return nullptr;
  }
  EVP_PKEY* pkey = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!pkey) {
    error = fmt::format("dkim {}: {} is not a PEM private key", settings.domain, settings.key_file);
    return nullptr;
  }
  std::shared_ptr<Signer> s(new Signer());
  s->key_ = std::make_unique<Key>();
  s->key_->pkey = pkey;
  s->domain_ = settings.domain;
  s->selector_ = settings.selector;
  s->ed25519_ = settings.algorithm == "ed25519-sha256";
  const int type = EVP_PKEY_get_base_id(pkey);
  if (s->ed25519_ != (type == EVP_PKEY_ED25519) || (!s->ed25519_ && type != EVP_PKEY_RSA)) {
    error = fmt::format("dkim {}: the key in {} does not match algorithm {}", settings.domain, settings.key_file,
                        settings.algorithm);
    return nullptr;
  }
  return s;
}

Signer::~Signer() = default;

std::string Signer::sign(std::string_view message, long long now) const {
  if (now == 0) now = static_cast<long long>(std::time(nullptr));
  auto split = message.find("\r\n\r\n");
  const auto header = message.substr(0, split == std::string_view::npos ? message.size() : split + 2);
  const auto body = split == std::string_view::npos ? std::string_view() : message.substr(split + 4);

  const auto body_hash = sha256(relaxed_body(body));
  const auto bh = b64(reinterpret_cast<const unsigned char*>(body_hash.data()), body_hash.size());

  // Bottom-up: the last instance of each listed field is the one signed.
  auto fields = header_fields(header);
  std::vector<bool> used(fields.size(), false);
  std::string data, h;
  std::vector<const char*> names(std::begin(signed_fields), std::end(signed_fields));
  for (const char* name : signed_when_present) {
    for (const auto& f : fields) {
      if (iequals(trim(f.name), name)) {
        names.push_back(name);
        break;
      }
    }
  }
  for (const char* name : names) {
    h += h.empty() ? name : std::string(":") + name;
    for (std::size_t i = fields.size(); i-- > 0;) {
      if (!used[i] && iequals(trim(fields[i].name), name)) {
        used[i] = true;
        data += relaxed_header(fields[i].name, fields[i].value);
        break;
      }
    }
  }
  const auto tags = fmt::format("v=1; a={}; c=relaxed/relaxed; d={}; s={}; t={}; h={}; bh={}; b=",
                                ed25519_ ? "ed25519-sha256" : "rsa-sha256", domain_, selector_, now, h, bh);
  auto sig_field = relaxed_header("DKIM-Signature", tags);
  data += sig_field.substr(0, sig_field.size() - 2);  // signed without its CRLF (§3.7)

  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string to_sign = ed25519_ ? sha256(data) : data;  // RFC 8463 §3: Ed25519 signs the hash
  std::size_t sig_len = 0;
  std::vector<unsigned char> sig;
  bool ok = EVP_DigestSignInit(ctx, nullptr, ed25519_ ? nullptr : EVP_sha256(), nullptr, key_->pkey) == 1 &&
            EVP_DigestSign(ctx, nullptr, &sig_len, reinterpret_cast<const unsigned char*>(to_sign.data()),
                           to_sign.size()) == 1;
  if (ok) {
    sig.resize(sig_len);
    ok = EVP_DigestSign(ctx, sig.data(), &sig_len, reinterpret_cast<const unsigned char*>(to_sign.data()),
                        to_sign.size()) == 1;
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("DKIM signing failed in OpenSSL");
  return "DKIM-Signature: " + tags + b64(sig.data(), sig_len) + "\r\n";
}

}  // namespace unsubrelay::dkim
