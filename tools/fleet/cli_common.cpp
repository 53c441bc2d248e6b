#include "cli_common.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace postwatch::fleet {
namespace po = boost::program_options;
using nlohmann::json;

namespace {
constexpr const char* kDefaultAggregator = "http://127.0.0.1:8080";
}  // namespace

std::string read_file(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read " + file);
  return ss.str();
}

std::uint64_t whole_number(const std::string& option, const std::string& text, std::uint64_t min, std::uint64_t max,
                           const std::string& range) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    throw UsageError("--" + option + " must be a whole number " + range + ", not '" + text + "'");
  return v;
}

std::string iso_utc(std::int64_t ms) {
  const std::time_t s = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (!::gmtime_r(&s, &tm)) return std::to_string(ms) + " ms";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

po::options_description connection_options(const std::string& what) {
  po::options_description o(what + " CONNECTION, for every subcommand");
  o.add_options()("aggregator", po::value<std::string>()->value_name("URL"),
                  "the aggregator's API, http://HOST:PORT or https://HOST:PORT (default: $POSTWATCH_AGGREGATOR, "
                  "else http://127.0.0.1:8080)")(
      "token-file", po::value<std::string>()->value_name("FILE"),
      "a file holding the API token (default: $POSTWATCH_TOKEN); status needs a read token, the others an "
      "operator token")("ca", po::value<std::string>()->value_name("FILE"),
                        "https: the CA certificate (PEM) the aggregator's certificate must chain to (default: the "
                        "system's CAs)");
  return o;
}

AggregatorClient client_of(const po::variables_map& vm, const std::string& needs_operator) {
  AggregatorClientOptions o;
  const char* env_url = std::getenv("POSTWATCH_AGGREGATOR");
  const std::string url = vm.count("aggregator")     ? vm["aggregator"].as<std::string>()
                          : env_url && *env_url != 0 ? std::string(env_url)
                                                     : std::string(kDefaultAggregator);
  try {
    o.url = AggregatorUrl::parse(url);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (vm.count("ca")) {
    if (!o.url.tls) throw UsageError("--ca is for an https:// aggregator, and " + o.url.text + " is http");
    o.ca_file = vm["ca"].as<std::string>();
  }
  if (vm.count("token-file")) {
    const auto file = vm["token-file"].as<std::string>();
    o.token = read_file(file);
    const auto first = o.token.find_first_not_of(" \t\r\n"), last = o.token.find_last_not_of(" \t\r\n");
    o.token = first == std::string::npos ? "" : o.token.substr(first, last - first + 1);
    if (o.token.empty()) throw std::runtime_error("--token-file " + file + " is empty");
    if (o.token.find_first_of(" \t\r\n") != std::string::npos)
      throw std::runtime_error("--token-file " + file + " must hold the token alone, on one line");
  } else if (const char* env_token = std::getenv("POSTWATCH_TOKEN")) {
    o.token = env_token;
  }
  o.needs_operator = needs_operator;
  return AggregatorClient(std::move(o));
}

std::string text(const json& v) { return v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump(); }

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? "" : text(*it);
}

std::int64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

void print_answer(std::ostream& out, const std::string& body) { out << body << (body.ends_with('\n') ? "" : "\n"); }

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::vector<std::string>& after_row) {
  std::vector<std::size_t> width;
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (std::size_t c = 0; c < rows[r].size(); ++c)
      line += c + 1 < rows[r].size() ? rows[r][c] + std::string(width[c] - rows[r][c].size() + 2, ' ') : rows[r][c];
    line.erase(line.find_last_not_of(' ') + 1);  // an empty last cell leaves no trailing blanks
    out << line << "\n";
    if (r < after_row.size() && !after_row[r].empty()) out << "    " << after_row[r] << "\n";
  }
}

}  // namespace postwatch::fleet
