// hafab dashboard: prints (and, where a desktop is at hand, opens) a link that logs a browser
// in to the controller's web dashboard once (src/controller/dashboard.h).
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <iostream>

#include "cli/api_client.h"
#include "cli/command.h"

extern char** environ;

namespace hafab::cli {
namespace {

using nlohmann::json;

// The login link from the leader when it answers at the URL it advertises, else from the first
// replica that answers (a follower's dashboard shows its store view and names the leader).
Result<std::string> LoginUrl(const ApiClient& c) {
  std::vector<std::string> urls;
  if (auto leader = c.Call("GET", "/v1/leader"); leader.ok()) {
    const json& l = (*leader)["leader"];
    if (l.is_object() && l.value("url", "") != "") urls.push_back(l.value("url", ""));
  }
  urls.insert(urls.end(), c.urls().begin(), c.urls().end());
  Status last = Status::Unavailable("no controller URL");
  for (const auto& url : urls) {
    auto login = c.GetFrom(url, "/v1/dashboard/login", std::chrono::seconds(5));
    if (login.ok() && (*login)["path"].is_string()) {
      return url + (*login)["path"].get<std::string>();
    }
    last = login.ok() ? Status::Unavailable(url + ": no login path in the answer") : login.status();
  }
  return last;
}

// Opens `url` with xdg-open when there is a desktop session; false when there is none.
bool OpenInBrowser(const std::string& url) {
  if (std::getenv("DISPLAY") == nullptr && std::getenv("WAYLAND_DISPLAY") == nullptr) return false;
  const char* argv[] = {"xdg-open", url.c_str(), nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "xdg-open", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
    return false;
  }
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

HAFAB_COMMAND(47, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto no_open = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("dashboard", "Print a link that opens the web dashboard");
  cmd->footer(
      "The link logs a browser in once, within a minute, and sets a session cookie that reads\n"
      "(every GET of the API, env values hidden) for 12 hours; it changes nothing. Give the\n"
      "link to no one: whoever opens it first reads the cluster. Needs the read or the admin\n"
      "token (the state directory's, or HAFAB_TOKEN).\n\n"
      "Example:\n  hafab dashboard --no-open");
  cmd->add_flag("--no-open", *no_open, "Print the link only (default: also open it on a desktop)");
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    WithClient(*o, [&](const ApiClient& c) -> Status {
      HAFAB_ASSIGN_OR_RETURN(std::string url, LoginUrl(c));
      std::cout << url << "\n";
      if (!*no_open && OpenInBrowser(url)) std::cerr << "opened in the browser\n";
      return Status::Ok();
    });
  });
});

}  // namespace
}  // namespace hafab::cli
