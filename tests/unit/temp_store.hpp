// temp_store.hpp: a fresh store per test, on every backend: SQLite, and
// PostgreSQL on the server UNSUBRELAY_TEST_PG_URL names (scripts/test.sh
// starts a private one through scripts/test-postgres.sh). Without that
// variable the PostgreSQL variants are skipped, saying why, or fail under
// CI=true (ci_require.hpp).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "ci_require.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::store::testing_support {

inline std::vector<std::string> backends() { return {"sqlite", "postgresql"}; }

/// A test on one backend (TEST_P with backends()); SetUp() skips or fails
/// the PostgreSQL variant when there is no test server.
class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    UNSUBRELAY_REQUIRE(GetParam() != "postgresql" || std::getenv("UNSUBRELAY_TEST_PG_URL"),
                       "no test PostgreSQL: UNSUBRELAY_TEST_PG_URL is unset (scripts/test-postgres.sh sets it)");
  }
};

/// open_now = false leaves the (empty) database unopened, so a migration
/// test can fill an old schema first and then reopen().
class TempStore {
 public:
  explicit TempStore(const std::string& backend, bool open_now = true) : backend_(backend) {
    char tmpl[] = "/tmp/unsubrelay-store-XXXXXX";
    dir = ::mkdtemp(tmpl);
    if (backend == "postgresql") {
      // A fresh database per test, on the test server.
      const std::string server = std::getenv("UNSUBRELAY_TEST_PG_URL");
      database_ = "unsubrelay_t" + std::to_string(std::random_device{}());
      pqxx::connection admin(server);
      pqxx::nontransaction(admin).exec("CREATE DATABASE " + database_);
      url_ = server.substr(0, server.rfind('/') + 1) + database_;
    }
    if (open_now) reopen();
  }
  ~TempStore() {
    store.reset();
    std::filesystem::remove_all(dir);
    if (!database_.empty()) {
      pqxx::connection admin(std::getenv("UNSUBRELAY_TEST_PG_URL"));
      pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + database_);
    }
  }
  void reopen() {
    store.reset();
    std::string error;
    store = backend_ == "postgresql" ? open_postgresql(url_, error) : open_sqlite(sqlite_path(), error);
    ASSERT_TRUE(store) << error;
  }

  std::string sqlite_path() const { return (dir / "var" / "store.db").string(); }
  const std::string& pg_url() const { return url_; }

  std::filesystem::path dir;
  std::unique_ptr<Store> store;

 private:
  std::string backend_;
  std::string database_;
  std::string url_;
};

}  // namespace unsubrelay::store::testing_support
