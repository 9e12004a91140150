// suppression_commands.cpp: `unsubrelay suppression list|add|remove|import`
// (SPEC Part 2, "Suppression list management"), the CLI twin of
// /api/v1/suppressions: same store calls, same JSON, same events.
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "unsubrelay/app/cli_tenant.hpp"
#include "unsubrelay/app/commands.hpp"
#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/store/suppression_list.hpp"
#include "unsubrelay/suppression/manage.hpp"

namespace unsubrelay::app {

namespace {

constexpr std::size_t read_chunk_bytes = 256 * 1024;

constexpr const char* suppression_usage =
    "usage: unsubrelay suppression list -c FILE [--address A] [--since TIME] [--limit N] [--cursor C]\n"
    "       unsubrelay suppression add -c FILE ADDRESS [--reason R] [--topic T]\n"
    "       unsubrelay suppression remove -c FILE ADDRESS [--topic T]\n"
    "       unsubrelay suppression import -c FILE [--source S] LIST_FILE|-\n"
    "each takes --tenant ID: that tenant's list (without it: the tenant default)\n";

struct Args {
  std::vector<std::string> words;
  std::string config_path;
  std::map<std::string, std::string> options;
};

std::optional<Args> parse(const std::vector<std::string>& args) {
  Args a;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& w = args[i];
    if (w == "-c" || w == "--config" || (w.starts_with("--") && w.size() > 2)) {
      if (i + 1 >= args.size()) return std::nullopt;
      (w == "-c" || w == "--config" ? a.config_path : a.options[w]) = args[++i];
    } else {
      a.words.push_back(w);
    }
  }
  for (const auto& [k, v] : a.options) {
    if (k != "--address" && k != "--since" && k != "--limit" && k != "--cursor" && k != "--reason" &&
        k != "--topic" && k != "--source" && k != "--tenant") {
      return std::nullopt;
    }
  }
  return a;
}

std::string option(const Args& a, const char* key) {
  const auto it = a.options.find(key);
  return it == a.options.end() ? std::string() : it->second;
}


int list(const Args& a, store::Store& s) {
  store::SuppressionQuery q;
  if (!option(a, "--since").empty()) {
    const auto since = suppression::parse_time(option(a, "--since"));
    if (!since) {
      std::cerr << "unsubrelay suppression list: --since takes unix seconds or YYYY-MM-DD[THH:MM:SSZ]\n";
      return exit_usage;
    }
    q.since = *since;
  }
  q.address = option(a, "--address");
  q.cursor = option(a, "--cursor");
  if (!q.cursor.empty() && !store::decode_cursor(q.cursor)) {
    std::cerr << "unsubrelay suppression list: --cursor is not one this command printed\n";
    return exit_usage;
  }
  const bool one_page = !option(a, "--limit").empty();
  q.limit = one_page ? std::stoul("0" + option(a, "--limit")) : store::max_page_limit;
  if (q.limit == 0 || q.limit > store::max_page_limit) {
    std::cerr << fmt::format("unsubrelay suppression list: --limit 1 to {}\n", store::max_page_limit);
    return exit_usage;
  }
  for (;;) {
    // One address: its entries and those of its hashed forms (an erased address).
    auto page = q.address.empty() ? s.list_suppressions(q, now_seconds()) : std::optional<store::SuppressionPage>();
    if (!q.address.empty()) {
      if (auto entries = s.suppressions_of(q.address, now_seconds())) page = store::SuppressionPage{*entries, ""};
    }
    if (!page) {
      std::cerr << "unsubrelay: store: " << s.last_error() << "\n";
      return 1;
    }
    for (const auto& e : page->entries) std::cout << json_text(suppression::entry_json(e)) << "\n";
    if (page->next_cursor.empty() || !q.address.empty()) break;
    if (one_page) {
      std::cerr << "next cursor: " << page->next_cursor << "\n";
      break;
    }
    q.cursor = page->next_cursor;
  }
  return 0;
}

int add(const Args& a, store::Store& s, const config::Config& cfg, const std::string& address) {
  suppression::ImportRow row;
  row.address = address;
  row.reason = suppression::Reason::manual;
  if (!option(a, "--reason").empty()) {
    const auto reason = suppression::parse_reason(option(a, "--reason"));
    if (!reason) {
      std::cerr << "unsubrelay suppression add: --reason is one of unsubscribe, complaint, hard_bounce, "
                   "soft_bounce, manual, import\n";
      return exit_usage;
    }
    row.reason = *reason;
  }
  row.topic = option(a, "--topic");
  if (!row.topic.empty() && !cfg.unsubscribe.find_topic(row.topic)) {
    std::cerr << fmt::format("unsubrelay: topic '{}' is not one of unsubscribe.topics\n", printable(row.topic, 64));
    return exit_usage;
  }
  const auto entry = suppression::entry_of(row, "cli", now_seconds());
  const auto added = s.add_suppressions({entry}, entry.created);
  if (!added) {
    std::cerr << "unsubrelay: store: " << s.last_error() << "\n";
    return 1;
  }
  std::cout << fmt::format("{} {}\n", *added ? "suppressed" : "already suppressed", address);
  return 0;
}

int remove(const Args& a, store::Store& s, const config::Config& cfg, const std::string& address) {
  const auto topic = option(a, "--topic");
  if (!topic.empty() && !cfg.unsubscribe.find_topic(topic)) {
    std::cerr << fmt::format("unsubrelay: topic '{}' is not one of unsubscribe.topics\n", printable(topic, 64));
    return exit_usage;
  }
  const auto lifted = s.lift(address, topic, "cli", now_seconds());  // an erased address's too
  if (!lifted) {
    std::cerr << "unsubrelay: store: " << s.last_error() << "\n";
    return 1;
  }
  if (*lifted == 0) {
    std::cout << fmt::format("{} is not suppressed\n", address);
    return 1;
  }
  std::cout << fmt::format("lifted {} entr{} of {}\n", *lifted, *lifted == 1 ? "y" : "ies", address);
  return 0;
}

int import(const Args& a, store::Store& s, const config::Config& cfg, const std::string& path) {
  std::ifstream file;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      std::cerr << fmt::format("unsubrelay suppression import: cannot open {}\n", path);
      return 1;
    }
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::vector<std::string> topics;
  for (const auto& t : cfg.unsubscribe.topics) topics.push_back(t.id);
  const auto source = option(a, "--source").empty() ? std::string("import") : option(a, "--source");
  suppression::Importer importer(s, std::move(topics), source.substr(0, 40), now_seconds());
  std::string buffer(read_chunk_bytes, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0 && !importer.push(std::string_view(buffer.data(), static_cast<std::size_t>(in.gcount())))) {
      break;
    }
  }
  const auto r = importer.finish();
  for (const auto& e : r.errors) std::cerr << fmt::format("{}:{}: {}\n", path, e.line, e.message);
  if (r.bad_rows > r.errors.size()) {
    std::cerr << fmt::format("{}: {} more bad rows not listed\n", path, r.bad_rows - r.errors.size());
  }
  if (!r.fatal.empty()) std::cerr << fmt::format("{}: stopped: {}\n", path, r.fatal);
  if (!r.store_error.empty()) std::cerr << fmt::format("{}: {}\n", path, r.store_error);
  std::cout << fmt::format("{}: {} format, {} rows imported ({} new, {} already suppressed), {} bad rows\n", path,
                           suppression::name(r.format), r.rows, r.added, r.rows - r.added, r.bad_rows);
  if (!r.ok()) return 1;
  return r.bad_rows ? exit_dataerr : 0;
}

}  // namespace

int suppression_main(const std::vector<std::string>& args) {
  const auto a = parse(args);
  const auto sub = a && a->words.size() > 1 ? a->words[1] : std::string();
  const bool needs_operand = sub == "add" || sub == "remove" || sub == "import";
  if (!a || a->config_path.empty() || (sub != "list" && !needs_operand) ||
      a->words.size() != (needs_operand ? 3u : 2u)) {
    std::cerr << suppression_usage;
    return exit_usage;
  }
  auto result = config::load_file(a->config_path);
  for (const auto& e : result.errors) std::cerr << e.to_string(a->config_path) << "\n";
  if (!result.ok()) return exit_config;
  const auto tenant = cli_tenant(result.config, a->options.count("--tenant") ? a->options.at("--tenant") : "default");
  if (!tenant) return exit_usage;
  const auto& cfg = tenant->view;  // its topics
  auto store = open_cli_store(*tenant);
  if (!store) return 1;
  // The tenant's keys, when there are any, so an erased address's hashed entries are found (and lifted) too.
  std::string err;
  if (auto keys = cli_keys(*tenant, false, err)) store->set_erasure_keys(store::ErasureKeys(*keys));
  if (sub == "list") return list(*a, *store);
  if (sub == "import") return import(*a, *store, cfg, a->words[2]);
  std::string why;
  const auto address = suppression::normalise_address(a->words[2], why);
  if (!address) {
    std::cerr << fmt::format("unsubrelay: '{}' is not an address: {}\n", printable(a->words[2], 100), why);
    return exit_usage;
  }
  return sub == "add" ? add(*a, *store, cfg, *address) : remove(*a, *store, cfg, *address);
}

}  // namespace unsubrelay::app
