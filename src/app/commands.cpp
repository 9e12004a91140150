// commands.cpp: command-line parsing and the offline subcommands
// (check-config, queue list / flush / delete).
#include "unsubrelay/app/commands.hpp"

#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "unsubrelay/app/cli_tenant.hpp"
#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/http/event_stream.hpp"
#include "unsubrelay/http/webhook.hpp"
#include "unsubrelay/mime/rewriter.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/spool/spool.hpp"

namespace unsubrelay::app {

namespace {

constexpr const char* usage_text = R"(usage: unsubrelay COMMAND -c FILE [options]

commands:
  run -c FILE                 run the relay in the foreground (SIGTERM drains, SIGHUP reloads)
  check-config -c FILE        validate the configuration; print every error with its line
  queue list -c FILE          list the spool, like mailq
  queue flush -c FILE         retry every deferred message now, like postqueue -f
  queue delete ID... -c FILE  remove messages from the spool, like postsuper -d
  token sign -c FILE --recipient R --campaign C --launch L [--topic T] [--tenant ID]
                              print the unsubscribe URL the relay would inject
  token verify -c FILE URL_OR_TOKEN [--tenant ID]
                              print a token's fields, or why it is invalid (without --tenant:
                              checked with the keys of the tenant its key id names)
  keygen [--id ID] [-o FILE]  write a new keys file (unsubscribe.keys_file) with one random key
  stats -c FILE [--campaign C] [--launch L] [--tenant ID]
                              sent / delivered / deferred / bounced / suppressed / unsubscribed per launch,
                              with hard_bounced / soft_bounced / blocked / complaints / complaint_rate /
                              sent_after_optout
  export -c FILE [--since TIME] [--events LIST] [--format jsonl|csv] [--tenant ID]
                              events (TIME: unix seconds or YYYY-MM-DD), for an ESP or CRM; LIST: comma-separated
                              (delivered,deferred,bounced,blocked,complaint,suppressed,unsubscribe,resubscribe,
                              erase; default: the last three) (docs/events.md)
  suppression list|add|remove|import -c FILE ... [--tenant ID]
                              manage the suppression list (docs/suppression.md)
  contact show|erase -c FILE ADDRESS [--tenant ID]
                              everything held about an address, or erase it (docs/suppression.md)
  version                     print the version

--tenant ID: with tenants: configured, the tenant whose own store and keys stats, export,
suppression, contact and token work on (docs/configuration.md); without it, the tenant "default",
which holds the data from before tenants. Without tenants:, only --tenant default is accepted.
)";


struct Arguments {
  std::vector<std::string> words;  // the command and its operands
  std::string config_path;
  std::map<std::string, std::string> options;  // --recipient R and friends
};

std::optional<Arguments> parse_arguments(const std::vector<std::string>& args) {
  Arguments a;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-c" || args[i] == "--config") {
      if (i + 1 >= args.size()) return std::nullopt;
      a.config_path = args[++i];
    } else if (args[i].starts_with("--config=")) {
      a.config_path = args[i].substr(9);
    } else if (args[i] == "--recipient" || args[i] == "--campaign" || args[i] == "--launch" || args[i] == "--id" ||
               args[i] == "-o" || args[i] == "--since" || args[i] == "--format" || args[i] == "--topic" ||
               args[i] == "--tenant" || args[i] == "--events") {
      if (i + 1 >= args.size()) return std::nullopt;
      a.options[args[i]] = args[i + 1];
      ++i;
    } else {
      a.words.push_back(args[i]);
    }
  }
  return a;
}

/// Loads the configuration and prints every error; nullopt when any.
std::optional<config::Config> load_or_report(const std::string& path) {
  auto result = config::load_file(path);
  for (const auto& e : result.errors) std::cerr << e.to_string(path) << "\n";
  if (!result.ok()) {
    std::cerr << fmt::format("{}: {} error(s)\n", path, result.errors.size());
    return std::nullopt;
  }
  return std::move(result.config);
}

int check_config(const std::string& path) {
  const auto cfg = load_or_report(path);
  if (!cfg) return exit_config;
  std::cout << fmt::format("{}: configuration OK\n", path);
  return 0;
}

int queue_list(const spool::Spool& spool) {
  const auto ids = spool.list_ids();
  if (ids.empty()) {
    std::cout << "Mail queue is empty\n";
    return 0;
  }
  std::cout << "-Queue ID-        --Size-- ----Arrival Time---- -Sender/Recipient-------\n";
  std::uint64_t total = 0;
  std::size_t count = 0;
  for (const auto& id : ids) {
    std::string why;
    const auto m = spool.load(id, &why);
    if (!m) {
      std::cout << fmt::format("{:<17} (unreadable: {})\n\n", id, why);
      continue;
    }
    ++count;
    total += m->content_length;
    std::string date = rfc5322_date(m->envelope.arrival).substr(0, 25);
    const bool deferred = m->state.attempts > 0;
    std::cout << fmt::format("{:<16}{} {:>8} {:<20}  {}\n", id, deferred ? ' ' : '*', m->content_length, date,
                             m->envelope.sender.empty() ? "MAILER-DAEMON" : m->envelope.sender);
    if (deferred) {
      std::cout << fmt::format("{:47}(attempts: {}, next try {}: {})\n", "", m->state.attempts,
                               rfc5322_date(m->state.next_try).substr(0, 25), printable(m->state.last_reason, 200));
    }
    for (std::size_t i = 0; i < m->envelope.recipients.size(); ++i) {
      const auto st = m->state.recipients[i];
      if (st != spool::RecipientStatus::pending) continue;
      std::cout << fmt::format("{:47}{}\n", "", m->envelope.recipients[i]);
    }
    std::cout << "\n";
  }
  std::cout << fmt::format("-- {} Kbytes in {} Request{}.\n", (total + 1023) / 1024, count, count == 1 ? "" : "s");
  return 0;
}

int queue_command(const Arguments& a, const config::Config& cfg) {
  spool::Spool spool(cfg.spool.path);
  // With spool.format: files too when segments are left over (a downgrade): the relay delivers those.
  if (std::filesystem::is_directory(cfg.spool.path + "/segments") &&
      (cfg.spool.segments || spool::Spool::holds_segments(cfg.spool.path))) {
    // Read only: the running relay owns the segments (docs/spool.md). It deletes a segment once nothing
    // in it is queued, so one listed a moment ago may be gone when read: then they are read again.
    for (int tries = 1;; ++tries) {
      spool.use_segments(std::size_t{cfg.spool.segment_max_kb} << 10, true);
      const auto r = spool.recover();
      if (r.error.empty()) break;
      if (tries == 5) {
        std::cerr << "unsubrelay: queue: " << r.error << "\n";
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  const auto& sub = a.words.size() > 1 ? a.words[1] : std::string();
  if (sub == "list") return queue_list(spool);
  if (sub == "flush") {
    if (auto err = spool.request_flush(); !err.empty()) {
      std::cerr << "unsubrelay: queue flush: " << err << "\n";
      return 1;
    }
    std::cout << "flush requested: the running relay retries every queued message within a second\n";
    return 0;
  }
  if (sub == "delete") {
    if (a.words.size() < 3) {
      std::cerr << "usage: unsubrelay queue delete ID... -c FILE\n";
      return exit_usage;
    }
    int status = 0;
    for (std::size_t i = 2; i < a.words.size(); ++i) {
      const auto& id = a.words[i];
      if (spool.in_segment(id)) {
        // The running relay owns the segments (one writer): it deletes the message (docs/spool.md).
        if (auto err = spool.request_delete(id); !err.empty()) {
          std::cerr << fmt::format("unsubrelay: {}: queue delete: {}\n", id, err);
          status = 1;
        } else {
          std::cout << fmt::format("{}: delete requested: the running relay deletes it within a second "
                                   "(a stopped one when it starts)\n", id);
        }
      } else if (spool.remove(id)) {
        std::cout << fmt::format("{}: deleted\n", id);
      } else {
        std::cerr << fmt::format("unsubrelay: {}: no such message in the queue\n", printable(id, 40));
        status = 1;
      }
    }
    return status;
  }
  std::cerr << "usage: unsubrelay queue list|flush|delete ID... -c FILE\n";
  return exit_usage;
}

std::string option(const Arguments& a, const char* name) {
  const auto it = a.options.find(name);
  return it == a.options.end() ? std::string() : it->second;
}

/// The tenant --tenant names, "default" without it; nullopt after printing why.
std::optional<CliTenant> tenant_of(const Arguments& a, const config::Config& cfg) {
  return cli_tenant(cfg, a.options.count("--tenant") ? a.options.at("--tenant") : std::string("default"));
}

int token_sign(const Arguments& a, const CliTenant& tenant, const mime::Rewriter& rewriter, long long now) {
  const auto rcpt = a.options.find("--recipient");
  if (rcpt == a.options.end()) {
    std::cerr << "usage: unsubrelay token sign -c FILE --recipient R --campaign C --launch L [--tenant ID]\n";
    return exit_usage;
  }
  const auto topic = option(a, "--topic");
  if (!topic.empty() && !tenant.view.unsubscribe.find_topic(topic)) {
    std::cerr << fmt::format("unsubrelay: topic '{}' is not one of unsubscribe.topics\n", printable(topic, 64));
    return exit_usage;
  }
  auto store = open_cli_store(tenant);
  if (!store) return 1;
  const auto uid = store->uid_for(rcpt->second);
  if (!uid) {
    std::cerr << "unsubrelay: store: " << store->last_error() << "\n";
    return 1;
  }
  std::cout << rewriter.url_for(*uid, option(a, "--campaign"), option(a, "--launch"), now, topic) << "\n";
  return 0;
}

/// The tenant that verifies a token: --tenant's, else the one whose keys hold its key id
/// (key ids are unique in the installation), else default (which reports the unknown key).
std::optional<CliTenant> verifying_tenant(const Arguments& a, const config::Config& cfg, std::string& err) {
  if (a.options.count("--tenant")) return tenant_of(a, cfg);
  auto all = cli_tenants(cfg);
  const auto key_id = token::key_id_of(a.words[2]);
  for (auto& t : all) {
    const auto keys = cli_keys(t, false, err);
    if (!keys) return std::nullopt;
    for (const auto& k : keys->keys()) {
      if (k.id == key_id) return std::move(t);
    }
  }
  return std::move(all.front());
}

int token_verify(const CliTenant& tenant, bool tenants, const std::string& text, const mime::Rewriter& rewriter,
                 long long now) {
  const auto v = token::verify(text, rewriter.keys(), static_cast<std::uint32_t>(now));
  if (!v.claims) {
    std::cout << "invalid: " << token::describe(v.error) << (tenants ? " (tenant " + tenant.id + ")" : "") << "\n";
    return 1;
  }
  const auto& c = *v.claims;
  std::cout << fmt::format("valid\nuid: {}\nemail_id: {}\nlaunch_list_id: {}\ntopic: {}\nissued: {}\n"
                           "expires: {}\nkey: {}\n",
                           token::uid_text(c.uid), printable(c.email_id, 64), printable(c.launch_list_id, 64),
                           c.topic.empty() ? std::string("(none)") : printable(c.topic, 64), rfc5322_date(c.issued),
                           c.expires ? rfc5322_date(c.expires) : std::string("never"), c.key_id);
  if (tenants) std::cout << "tenant: " << tenant.id << "\n";
  return 0;
}

int token_command(const Arguments& a, const config::Config& cfg) {
  const auto& sub = a.words.size() > 1 ? a.words[1] : std::string();
  if (sub != "sign" && (sub != "verify" || a.words.size() < 3)) {
    std::cerr << (sub == "verify" ? "usage: unsubrelay token verify -c FILE URL_OR_TOKEN [--tenant ID]\n"
                                  : "usage: unsubrelay token sign|verify -c FILE ...\n");
    return exit_usage;
  }
  std::string err;
  const auto tenant = sub == "sign" ? tenant_of(a, cfg) : verifying_tenant(a, cfg, err);
  if (!tenant && err.empty()) return exit_usage;
  auto keys = tenant ? cli_keys(*tenant, sub == "sign", err) : std::nullopt;
  if (!keys) {
    std::cerr << "unsubrelay: " << err << "\n";
    return exit_config;
  }
  const mime::Rewriter rewriter(tenant->view.unsubscribe, std::move(*keys));
  const auto now = static_cast<long long>(std::time(nullptr));
  if (sub == "sign") return token_sign(a, *tenant, rewriter, now);
  return token_verify(*tenant, !cfg.tenants.empty(), a.words[2], rewriter, now);
}

int stats_command(const Arguments& a, const CliTenant& tenant) {
  auto store = open_cli_store(tenant);
  if (!store) return 1;
  const auto launches = store->launches(option(a, "--campaign"), option(a, "--launch"));
  if (!launches) {
    std::cerr << "unsubrelay: store: " << store->last_error() << "\n";
    return 1;
  }
  // Part 1's columns, then Part 2's (SPEC: the JSON field names as labels).
  std::cout << fmt::format("{:<14} {:<20} {:<8} {:>8} {:>9} {:>8} {:>7} {:>10} {:>12} {:>7} {:>12} {:>12} {:>7} "
                           "{:>10} {:>14} {:>17}\n",
                           "email_id", "launch_list_id", "kind", "sent", "delivered", "deferred", "bounced",
                           "suppressed", "unsubscribed", "rate", "hard_bounced", "soft_bounced", "blocked",
                           "complaints", "complaint_rate", "sent_after_optout");
  for (const auto& l : *launches) {
    const auto& c = l.counts;
    const double rate = c.delivered ? 100.0 * static_cast<double>(c.unsubscribed) / static_cast<double>(c.delivered) : 0;
    std::cout << fmt::format("{:<14} {:<20} {:<8} {:>8} {:>9} {:>8} {:>7} {:>10} {:>12} {:>6.2f}% {:>12} {:>12} "
                             "{:>7} {:>10} {:>13.3f}% {:>17}\n",
                             printable(l.email_id, 14), printable(l.launch_list_id, 20), l.kind, c.sent, c.delivered,
                             c.deferred, c.bounced, c.suppressed, c.unsubscribed, rate, c.hard_bounced,
                             c.soft_bounced, c.blocked, c.complaints, 100.0 * c.complaint_rate(),
                             c.sent_after_optout);
  }
  return 0;
}

std::optional<long long> parse_time(const std::string& text) {
  if (text.empty()) return 0;
  if (text.find('-') == std::string::npos) {
    try {
      return std::stoll(text);
    } catch (...) {
      return std::nullopt;
    }
  }
  std::tm tm{};
  if (!strptime(text.c_str(), "%Y-%m-%d", &tm)) return std::nullopt;
  return static_cast<long long>(timegm(&tm));
}

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

int export_command(const Arguments& a, const CliTenant& tenant) {
  const auto since = parse_time(option(a, "--since"));
  const auto format = option(a, "--format").empty() ? std::string("jsonl") : option(a, "--format");
  const bool chosen = a.options.count("--events") != 0;
  std::string why;
  const auto filter = chosen ? http::EventFilter::parse(option(a, "--events"), why) : http::EventFilter::subscription();
  if (!filter) std::cerr << "unsubrelay export: --events: " << why << "\n";
  if (!since || !filter || (format != "jsonl" && format != "csv")) {
    std::cerr << "usage: unsubrelay export -c FILE [--since UNIX_SECONDS|YYYY-MM-DD] [--events LIST] "
                 "[--format jsonl|csv] [--tenant ID]\n";
    return exit_usage;
  }
  auto store = open_cli_store(tenant);
  if (!store) return 1;
  // Without --events the columns of before issue 26; with it, a copy's outcome fields too.
  if (format == "csv") {
    std::cout << "time,action,source,uid,email,email_id,launch_list_id,ip,user_agent"
              << (chosen ? ",topic,queue_id,copy,status,detail,kind,upstream_id\n" : "\n");
  }
  long long after = 0;
  for (;;) {
    const auto page = http::read_events(*store, *filter, *since, after, 1000, static_cast<long long>(std::time(nullptr)));
    if (!page) {
      std::cerr << "unsubrelay: store: " << store->last_error() << "\n";
      return 1;
    }
    for (const auto& x : page->events) {
      const auto& e = x.event;
      if (format == "csv") {
        std::cout << fmt::format("{},{},{},{},{},{},{},{},{}", e.time, store::name(e.action), e.source, e.uid,
                                 csv_field(x.address), csv_field(e.email_id), csv_field(e.launch_list_id),
                                 csv_field(e.ip), csv_field(e.user_agent));
        if (chosen) {
          std::cout << fmt::format(",{},{},{},{},{},{},{}", csv_field(e.topic), csv_field(e.queue_id),
                                   e.copy >= 0 ? std::to_string(e.copy) : "", csv_field(e.status),
                                   csv_field(e.detail), csv_field(e.kind), csv_field(e.upstream_id));
        }
        std::cout << "\n";
      } else {
        std::cout << json_text(http::event_json(x, false)) << "\n";
      }
    }
    if (page->next == after) break;
    after = page->next;
  }
  return 0;
}

int keygen(const Arguments& a) {
  const auto id = a.options.count("--id") ? a.options.at("--id") : std::string("k1");
  std::vector<std::string> errors;
  if (!token::KeySet::from_keys({{id, std::string(32, 'x')}}, errors)) {
    std::cerr << "unsubrelay keygen: " << errors.front() << "\n";
    return exit_usage;
  }
  const auto text = token::generate_keys_file(id);
  if (!a.options.count("-o")) {
    std::cout << text;
    return 0;
  }
  const auto& path = a.options.at("-o");
  std::ofstream out(path, std::ios::trunc);
  if (!out || !(out << text)) {
    std::cerr << "unsubrelay keygen: cannot write " << path << "\n";
    return 1;
  }
  out.close();
  ::chmod(path.c_str(), 0600);
  std::cout << "wrote " << path << "\n";
  return 0;
}

/// The spool, the configuration and key files are the installation's, not a tenant's.
int no_tenant_option(const std::string& command) {
  std::cerr << fmt::format("unsubrelay {}: --tenant is not an option of this command (it works on the whole "
                           "installation)\n", command);
  return exit_usage;
}

}  // namespace

int main_with_args(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "suppression") return suppression_main(args);
  if (!args.empty() && args[0] == "contact") return contact_main(args);
  const auto a = parse_arguments(args);
  if (!a || a->words.empty() || a->words[0] == "help" || a->words[0] == "--help" || a->words[0] == "-h") {
    std::cerr << usage_text;
    return a && !a->words.empty() ? 0 : exit_usage;
  }
  const auto& command = a->words[0];
  if (command == "version" || command == "--version") {
    std::cout << "unsubrelay 0.1.0\n";
    return 0;
  }
  if (a->options.count("--tenant") && (command == "keygen" || command == "check-config" || command == "run")) {
    return no_tenant_option(command);
  }
  if (command == "keygen") return keygen(*a);
  if (a->config_path.empty()) {
    std::cerr << fmt::format("unsubrelay {}: -c FILE is required\n\n{}", command, usage_text);
    return exit_usage;
  }
  if (command == "check-config") return check_config(a->config_path);
  if (command == "run") return run_relay(a->config_path);
  if (command == "queue" || command == "token" || command == "stats" || command == "export") {
    const auto cfg = load_or_report(a->config_path);
    if (!cfg) return exit_config;
    if (command == "token") return token_command(*a, *cfg);
    if (command == "queue") return a->options.count("--tenant") ? no_tenant_option(command) : queue_command(*a, *cfg);
    const auto tenant = tenant_of(*a, *cfg);
    if (!tenant) return exit_usage;
    return command == "stats" ? stats_command(*a, *tenant) : export_command(*a, *tenant);
  }
  std::cerr << fmt::format("unsubrelay: unknown command '{}'\n\n{}", printable(command, 40), usage_text);
  return exit_usage;
}

}  // namespace unsubrelay::app
