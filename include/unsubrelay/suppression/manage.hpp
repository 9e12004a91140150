// manage.hpp: suppression list management shared by the HTTP API and the CLI.
//
// Importer streams an opt-out list into the store: the pure parser
// (import.hpp) reads it chunk by chunk, good rows go to the store in batches
// of store::import_batch_rows (one transaction each), bad rows are counted
// and the first max_reported_errors are kept with their line numbers. While
// the next batch is read, the store writes as many as it can at once
// (Store::import_writers: one on SQLite; two on PostgreSQL, each with its own
// connection and server process), a thread each. Memory stays flat whatever
// the input size (import_writers + 1 batches at most). A store
// failure stops the import and the report names the rows that were not
// applied; running the same import again is harmless (idempotent).
#pragma once

#include <cstddef>
#include <deque>
#include <future>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "unsubrelay/store/store.hpp"
#include "unsubrelay/store/suppression_list.hpp"
#include "unsubrelay/suppression/import.hpp"

namespace unsubrelay::suppression {

constexpr std::size_t max_reported_errors = 1000;

struct ImportReport {
  Format format = Format::unknown;
  std::size_t rows = 0;      // good rows applied
  std::size_t added = 0;     // of which new entries (the others renewed one already there)
  std::size_t bad_rows = 0;
  std::vector<RowError> errors;  // the first max_reported_errors bad rows
  std::string fatal;         // why reading stopped before the end ("" when it did not)
  std::string store_error;   // the store failed: which good rows were not applied

  bool ok() const { return fatal.empty() && store_error.empty(); }
};

class Importer {
 public:
  /// batch_rows: rows per store call (one transaction); tests make it small.
  Importer(store::Store& store, std::vector<std::string> topics, std::string source, long long now,
           std::size_t batch_rows = store::import_batch_rows);
  /// Feeds the next bytes; false once the import has stopped (fatal or store error).
  bool push(std::string_view bytes);
  /// The input ended: applies the last batch.
  ImportReport finish();
  /// The input stopped short (a stalled or lost client, a body over its
  /// limit): applies the complete rows read so far, never the record being
  /// read, and reports `why` as the fatal error (unless one came first).
  ImportReport abandon(const std::string& why);

 private:
  /// A batch handed to a writer thread: good rows first + 1 .. first + rows.
  struct Pending {
    std::future<std::optional<std::size_t>> added;
    std::size_t first = 0;
    std::size_t rows = 0;
  };

  /// Counts the bad rows, batches the good ones; false once the store failed.
  bool take(ImportOutput& out);
  /// Hands the batch to a writer (after settling the oldest when two are in flight).
  bool flush();
  void settle_oldest();
  void settle_all();

  store::Store& store_;
  ImportParser parser_;
  std::string source_;
  long long now_;
  std::size_t batch_rows_;
  std::vector<store::Suppression> batch_;
  std::deque<Pending> in_flight_;
  std::size_t read_ = 0;                                   // good rows handed to writers
  std::vector<std::pair<std::size_t, std::size_t>> lost_;  // good rows not applied (first, last)
  std::string store_failure_;                              // the store's first error
  ImportReport report_;
};

/// The entry an imported row makes: its topic's entry, else all mail for
/// bounces and all campaigns for the rest; created = the row's, else now.
store::Suppression entry_of(const ImportRow& row, const std::string& source, long long now);

nlohmann::json report_json(const ImportReport& report);
nlohmann::json entry_json(const store::Suppression& entry);
/// Personal data (contact_json.cpp): GET /api/v1/contacts/ADDRESS and
/// `unsubrelay contact show` print this; an erasure's summary.
nlohmann::json contact_json(const store::ContactRecord& record);
nlohmann::json erase_json(const std::string& address, const store::EraseOutcome& outcome);

}  // namespace unsubrelay::suppression
