// https_get against a real local HTTPS server (tests/integration/
// https_fixture.py, python3 http.server + ssl) with a test CA made by openssl:
// success, wrong CA, a server that never answers, a hanging answer, a slow
// host name lookup, an oversize body, a redirect, and unlisted URLs that must
// not even connect. Built as its own executable (feedback_fetch_tests): it
// uses loopback sockets and child processes, which the unit tests do not.
//
// Deadlines: a fetch that must succeed gets 20 s (a TLS handshake under
// ASan on a loaded machine takes seconds); one that must time out gets a
// short one, and the test checks it ended well before the thing it waits
// for (never that it lasted at least so long).
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "unsubrelay/common/tls.hpp"
#include "unsubrelay/feedback/certificate_cache.hpp"
#include "unsubrelay/feedback/fetch_pool.hpp"
#include "unsubrelay/feedback/https_fetch.hpp"

namespace fb = unsubrelay::feedback;
namespace fs = std::filesystem;

/// Host name lookups of this executable that take this long first (0: none).
/// The fetcher's own getaddrinfo() calls land here: a definition in the
/// executable comes before the C library's; the real one is the next.
static std::atomic<int> lookup_delay_ms{0};

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** res) {
  using Real = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
  static const auto real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "getaddrinfo"));
  if (const int delay = lookup_delay_ms.load(); delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  return real(node, service, hints, res);
}

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void run(const std::string& command) {
  ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
}

/// A listening loopback socket that never accepts: TCP connects, TLS never starts.
struct SilentListener {
  int fd = -1;
  int port = 0;
  SilentListener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 8);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd); }
  /// True when a connection is waiting in the backlog.
  bool connected() const {
    const int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) return false;
    ::close(c);
    return true;
  }
};

class HttpsFetch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("unsubrelay-fetch-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const auto d = dir_.string();
    const std::string subj = " -nodes -days 2 -subj ";
    run("openssl req -x509 -newkey rsa:2048 -keyout " + d + "/ca.key -out " + d + "/ca.pem" + subj + "/CN=unsubrelay-test-ca");
    run("openssl req -x509 -newkey rsa:2048 -keyout " + d + "/other.key -out " + d + "/other.pem" + subj + "/CN=other-ca");
    run("openssl req -newkey rsa:2048 -keyout " + d + "/server.key -out " + d + "/server.csr" + subj + "/CN=localhost");
    std::ofstream(dir_ / "san.ext") << "subjectAltName=DNS:localhost\n";  // no IP: see NameMismatch
    run("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d + "/ca.key -CAcreateserial -out " +
        d + "/server.pem -days 2 -extfile " + d + "/san.ext");
    std::ofstream(dir_ / "signing.pem") << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    server_ = ::fork();
    if (server_ == 0) {
      const std::string script = std::string(UNSUBRELAY_TEST_SOURCE) + "/integration/https_fixture.py";
      ::execl("/usr/bin/python3", "python3", script.c_str(), (d + "/server.pem").c_str(), (d + "/server.key").c_str(),
              (d + "/port").c_str(), (d + "/signing.pem").c_str(), static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    for (int i = 0; i < 200 && !fs::exists(dir_ / "port"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    port_ = slurp(dir_ / "port");
  }

  static void TearDownTestSuite() {
    if (server_ > 0) {
      ::kill(server_, SIGTERM);
      ::waitpid(server_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }

  void SetUp() override { ASSERT_FALSE(port_.empty()) << "the HTTPS fixture server did not start"; }

  std::string base() const { return "https://localhost:" + port_ + "/certs/"; }
  /// The request paths the server saw ("#" lines are its notes on clients that hung up).
  std::string log() const {
    std::istringstream in(slurp(dir_ / "port.log"));
    std::string out, line;
    while (std::getline(in, line)) {
      if (!line.starts_with("#")) out += line + "\n";
    }
    return out;
  }

  /// The intermediate profile with ca as the only CA.
  static std::shared_ptr<boost::asio::ssl::context> client(const std::string& ca) {
    std::string error;
    auto ctx = unsubrelay::make_client_context(unsubrelay::config::Tls{}, ca, error);
    EXPECT_TRUE(ctx) << error;
    return ctx;
  }

  fb::FetchOptions options() const {
    fb::FetchOptions o;
    o.allowed_prefixes = {base(), "https://localhost:" + port_ + "/confirm"};
    o.tls = client((dir_ / "ca.pem").string());
    o.limits.timeout = std::chrono::seconds(20);
    return o;
  }

  static inline fs::path dir_;
  static inline pid_t server_ = -1;
  static inline std::string port_;
};

}  // namespace

TEST_F(HttpsFetch, FetchesAnAllowedUrl) {
  const auto r = fb::https_get(base() + "cert.pem", options());
  ASSERT_TRUE(r.ok()) << fb::describe(r.error) << ": " << r.detail;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, slurp(dir_ / "signing.pem"));
  const auto confirm = fb::https_get("https://localhost:" + port_ + "/confirm?Action=ConfirmSubscription&Token=t",
                                     options());
  ASSERT_TRUE(confirm.ok()) << confirm.detail;
  EXPECT_NE(confirm.body.find("<SubscriptionArn>"), std::string::npos);
}

TEST_F(HttpsFetch, CertificateCacheFetchesOnce) {
  const auto o = options();
  fb::FetchPool pool(2, 6);
  fb::CertificateCache cache([&](const std::string& url) { return fb::https_get(url, o); }, pool);
  const auto before = log().size();
  EXPECT_TRUE(cache.get(base() + "cert.pem", 1000).ok());
  EXPECT_TRUE(cache.get(base() + "cert.pem", 1001).ok());
  EXPECT_EQ(log().size() - before, std::string("/certs/cert.pem\n").size());
}

TEST_F(HttpsFetch, WrongCaIsATlsError) {
  auto o = options();
  o.tls = client((dir_ / "other.pem").string());
  const auto r = fb::https_get(base() + "cert.pem", o);
  EXPECT_EQ(r.error, fb::FetchError::tls) << r.detail;
  EXPECT_TRUE(r.body.empty());
  // The system CAs do not know the test CA either.
  o.tls = client("");
  EXPECT_EQ(fb::https_get(base() + "cert.pem", o).error, fb::FetchError::tls);
}

TEST_F(HttpsFetch, NameMismatchIsATlsError) {
  // The server's certificate names localhost only; the same server reached as 127.0.0.1 fails the name check.
  auto o = options();
  o.allowed_prefixes = {"https://127.0.0.1:" + port_ + "/"};
  const auto r = fb::https_get("https://127.0.0.1:" + port_ + "/certs/cert.pem", o);
  EXPECT_EQ(r.error, fb::FetchError::tls) << r.detail;
  EXPECT_TRUE(r.body.empty());
}

TEST_F(HttpsFetch, ServerThatNeverAnswersTimesOut) {
  SilentListener silent;
  auto o = options();
  const auto url = "https://127.0.0.1:" + std::to_string(silent.port) + "/cert.pem";
  o.allowed_prefixes = {url};
  o.limits.timeout = std::chrono::milliseconds(800);
  const auto start = std::chrono::steady_clock::now();
  const auto r = fb::https_get(url, o);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.error, fb::FetchError::timeout) << r.detail;
  EXPECT_LT(took, std::chrono::seconds(10));  // the listener would wait for ever
}

TEST_F(HttpsFetch, HangingAnswerTimesOut) {
  // The fixture sleeps 120 s before answering /certs/hang; the handshake has the whole deadline.
  auto o = options();
  o.limits.timeout = std::chrono::seconds(8);
  const auto start = std::chrono::steady_clock::now();
  const auto r = fb::https_get(base() + "hang", o);
  EXPECT_EQ(r.error, fb::FetchError::timeout) << r.detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST_F(HttpsFetch, SlowHostNameLookupIsInsideTheDeadline) {
  // A resolver that answers after 8 s (a dead name server) against a 1 s deadline: the
  // fetch gives up at the deadline, not when the lookup ends.
  auto o = options();
  o.limits.timeout = std::chrono::seconds(1);
  lookup_delay_ms = 8000;
  const auto start = std::chrono::steady_clock::now();
  const auto r = fb::https_get(base() + "cert.pem", o);
  const auto took = std::chrono::steady_clock::now() - start;
  lookup_delay_ms = 0;
  EXPECT_EQ(r.error, fb::FetchError::timeout) << r.detail;
  EXPECT_LT(took, std::chrono::seconds(5));
  // The next fetch is not held up by the lookup still running.
  const auto next = fb::https_get(base() + "cert.pem", options());
  EXPECT_TRUE(next.ok()) << next.detail;
}

TEST_F(HttpsFetch, OversizeBodyIsRefused) {
  const auto r = fb::https_get(base() + "big", options());
  EXPECT_EQ(r.error, fb::FetchError::too_large) << r.detail;
  EXPECT_TRUE(r.body.empty());
}

TEST_F(HttpsFetch, RedirectIsNotFollowed) {
  const auto r = fb::https_get(base() + "redirect", options());
  EXPECT_EQ(r.error, fb::FetchError::redirect);
  EXPECT_EQ(r.status, 302);
  EXPECT_NE(r.detail.find("evil.example"), std::string::npos);
  const auto missing = fb::https_get(base() + "nothing-here", options());
  EXPECT_EQ(missing.error, fb::FetchError::http_status);
  EXPECT_EQ(missing.status, 404);
}

TEST_F(HttpsFetch, UnlistedUrlsMakeNoConnection) {
  SilentListener trap;
  const auto trap_base = "https://127.0.0.1:" + std::to_string(trap.port);
  auto o = options();
  o.limits.timeout = std::chrono::seconds(2);
  for (const auto& url : {trap_base + "/cert.pem",                                     // another port
                          "http://127.0.0.1:" + std::to_string(trap.port) + "/cert.pem",  // not https
                          "https://user@127.0.0.1:" + std::to_string(trap.port) + "/x"}) {
    const auto r = fb::https_get(url, o);
    EXPECT_EQ(r.error, fb::FetchError::not_allowed) << url;
  }
  EXPECT_FALSE(trap.connected());
  // The same server's own paths outside the prefix are not fetched either.
  const auto before = log();
  EXPECT_EQ(fb::https_get("https://localhost:" + port_ + "/other/cert.pem", options()).error,
            fb::FetchError::not_allowed);
  EXPECT_EQ(fb::https_get("https://localhost:" + port_ + "/certs/../admin", options()).error,
            fb::FetchError::not_allowed);
  EXPECT_EQ(log(), before);
  // Control: the trap does see a connection when its URL is allowed.
  o.allowed_prefixes = {trap_base + "/"};
  EXPECT_EQ(fb::https_get(trap_base + "/cert.pem", o).error, fb::FetchError::timeout);
  EXPECT_TRUE(trap.connected());
}

TEST(ClientContext, ErrorsAreReportedNotReplacedByDefaults) {
  std::string error;
  unsubrelay::config::Tls bad;
  bad.ciphers = "NO-SUCH-CIPHER";
  EXPECT_FALSE(unsubrelay::make_client_context(bad, "", error));
  EXPECT_NE(error.find("tls.ciphers"), std::string::npos) << error;
  EXPECT_FALSE(unsubrelay::make_client_context(unsubrelay::config::Tls{}, "/nonexistent/ca.pem", error));
  EXPECT_NE(error.find("/nonexistent/ca.pem"), std::string::npos) << error;
  // A fetch without a context fails; it never falls back to OpenSSL's defaults.
  fb::FetchOptions o;
  o.allowed_prefixes = {"https://localhost:1/"};
  EXPECT_EQ(fb::https_get("https://localhost:1/x", o).error, fb::FetchError::tls);
}
