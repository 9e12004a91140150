// manage.cpp: streaming an import into the store, and the JSON of entries (manage.hpp).
#include "unsubrelay/suppression/manage.hpp"

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

void Importer::take(ImportOutput& out) {
  for (auto& e : out.errors) {
    ++report_.bad_rows;
    if (report_.errors.size() < max_reported_errors) report_.errors.push_back(std::move(e));
  }
  for (const auto& row : out.rows) batch_.push_back(entry_of(row, source_, now_));
  out.rows.clear();
  out.errors.clear();
}

bool Importer::flush() {
  if (batch_.empty() || !report_.store_error.empty()) return report_.store_error.empty();
  const auto added = store_.add_suppressions(batch_, now_);
  if (!added) {
    report_.store_error = fmt::format("store: {} (the {} rows read after the first {} were not applied)",
                                      store_.last_error(), batch_.size(), report_.rows);
    batch_.clear();
    return false;
  }
  report_.rows += batch_.size();
  report_.added += *added;
  batch_.clear();
  return true;
}

bool Importer::push(std::string_view bytes) {
  if (!report_.store_error.empty() || !parser_.fatal().empty()) return false;
  ImportOutput out;
  parser_.push(bytes, out);
  take(out);
  if (batch_.size() >= batch_rows_ && !flush()) return false;
  return parser_.fatal().empty();
}

ImportReport Importer::finish() {
  ImportOutput out;
  if (report_.store_error.empty()) {
    parser_.finish(out);
    take(out);
    flush();
  }
  report_.format = parser_.format();
  report_.fatal = parser_.fatal();
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
