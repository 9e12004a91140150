// manage.cpp: streaming an import into the store, and the JSON of entries (manage.hpp).
#include "unsubrelay/suppression/manage.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "unsubrelay/store/suppression_list.hpp"

namespace unsubrelay::suppression {

using nlohmann::json;

store::Suppression entry_of(const ImportRow& row, const std::string& source, long long now) {
  store::Suppression e;
  e.address = row.address;
  e.reason = name(row.reason);
  e.source = source;
  e.created = row.created ? row.created : now;
  if (!row.topic.empty()) {
    e.scope = store::Scope::topic;
    e.scope_value = row.topic;
  } else if (row.reason == Reason::hard_bounce || row.reason == Reason::soft_bounce) {
    e.scope = store::Scope::all_mail;  // the address does not work: transactional mail too
  } else {
    e.scope = store::Scope::campaigns;
  }
  return e;
}

Importer::Importer(store::Store& store, std::vector<std::string> topics, std::string source, long long now,
                   std::size_t batch_rows)
    : store_(store), parser_(std::move(topics)), source_(std::move(source)), now_(now), batch_rows_(batch_rows) {
  batch_.reserve(batch_rows_);
}

bool Importer::take(ImportOutput& out) {
  for (auto& e : out.errors) {
    ++report_.bad_rows;
    if (report_.errors.size() < max_reported_errors) report_.errors.push_back(std::move(e));
  }
  out.errors.clear();
  bool ok = true;
  for (const auto& row : out.rows) {
    batch_.push_back(entry_of(row, source_, now_));
    if (batch_.size() == batch_rows_ && !flush()) {
      ok = false;  // the store failed: the rest is not applied (the report says from where)
      break;
    }
  }
  out.rows.clear();
  return ok;
}

bool Importer::flush() {
  if (in_flight_.size() >= std::max<std::size_t>(store_.import_writers(), 1)) settle_oldest();
  if (batch_.empty() || !store_failure_.empty()) return store_failure_.empty();
  Pending p{{}, read_, batch_.size()};
  p.added = std::async(std::launch::async, [this, batch = std::move(batch_)] {
    return store_.add_suppressions(batch, now_);
  });
  read_ += p.rows;
  in_flight_.push_back(std::move(p));
  batch_ = {};
  batch_.reserve(batch_rows_);
  return true;
}

void Importer::settle_oldest() {
  auto p = std::move(in_flight_.front());
  in_flight_.pop_front();
  const auto added = p.added.get();
  if (added) {
    report_.rows += p.rows;
    report_.added += *added;
    return;
  }
  if (store_failure_.empty()) store_failure_ = store_.last_error();
  lost_.emplace_back(p.first + 1, p.first + p.rows);
}

void Importer::settle_all() {
  while (!in_flight_.empty()) settle_oldest();
  if (store_failure_.empty()) return;
  std::string lost;
  for (const auto& [first, last] : lost_) lost += fmt::format("good rows {}-{}, ", first, last);
  report_.store_error = fmt::format("store: {} (not applied: {}and any good row after {}, counted in file order; "
                                    "the import stopped there)",
                                    store_failure_, lost, read_);
  batch_.clear();
}

bool Importer::push(std::string_view bytes) {
  if (!store_failure_.empty() || !parser_.fatal().empty()) return false;
  ImportOutput out;
  parser_.push(bytes, out);
  return take(out) && parser_.fatal().empty();
}

ImportReport Importer::finish() {
  ImportOutput out;
  if (store_failure_.empty()) {
    parser_.finish(out);
    if (take(out)) flush();
  }
  settle_all();
  report_.format = parser_.format();
  report_.fatal = parser_.fatal();
  return report_;
}

ImportReport Importer::abandon(const std::string& why) {
  if (store_failure_.empty()) flush();  // parser_.finish() is not called: it would end the partial record
  settle_all();
  report_.format = parser_.format();
  report_.fatal = parser_.fatal().empty() ? why : parser_.fatal();
  return report_;
}

json report_json(const ImportReport& r) {
  json errors = json::array();
  for (const auto& e : r.errors) errors.push_back({{"line", e.line}, {"error", e.message}});
  json out = {{"format", name(r.format)}, {"rows", r.rows},         {"added", r.added},
              {"renewed", r.rows - r.added}, {"bad_rows", r.bad_rows}, {"errors", errors}};
  if (!r.fatal.empty()) out["fatal"] = r.fatal;
  if (!r.store_error.empty()) out["store_error"] = r.store_error;
  return out;
}

json entry_json(const store::Suppression& e) {
  return {{"address", e.address},
          {"scope", store::name(e.scope)},
          {"email_id", e.scope == store::Scope::campaign ? e.scope_value : ""},
          {"topic", e.scope == store::Scope::topic ? e.scope_value : ""},
          {"reason", e.reason},
          {"source", e.source},
          {"created", e.created},
          {"expires", e.expires}};
}

}  // namespace unsubrelay::suppression
