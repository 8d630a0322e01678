#include "tests/faults/netns.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <sstream>

namespace hafab::faults {
namespace {

bool PidAlive(long pid) {
  return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH);
}

// Names left by harness processes that are gone: namespaces hafab-<pid>-nI, bridges hfb<pid>.
void RemoveStale() {
  std::string out;
  if (RunShell("ip netns list", &out) == 0) {
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      std::string name = line.substr(0, line.find(' '));
      long pid = 0;
      if (std::sscanf(name.c_str(), "hafab-%ld-n", &pid) == 1 && !PidAlive(pid)) {
        RunShell("ip netns del " + name);
      }
    }
  }
  if (RunShell("ip -o link show type bridge", &out) == 0) {
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      auto colon = line.find(": ");
      if (colon == std::string::npos) continue;
      std::string name = line.substr(colon + 2, line.find(':', colon + 2) - colon - 2);
      long pid = 0;
      if (std::sscanf(name.c_str(), "hfb%ld", &pid) == 1 && !PidAlive(pid)) {
        RunShell("ip link del " + name);
      }
    }
  }
}

}  // namespace

int RunShell(const std::string& cmd, std::string* out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[1024];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

NetnsLab::~NetnsLab() { (void)Destroy(); }

std::string NetnsLab::NetnsName(int i) const { return "hafab-" + tag_ + "-n" + std::to_string(i); }
std::string NetnsLab::HostVeth(int i) const { return "hfv" + tag_ + "n" + std::to_string(i); }

int NetnsLab::Index(const std::string& node) {
  if (node.size() < 2 || node[0] != 'n') return 0;
  return std::atoi(node.c_str() + 1);
}

std::string NetnsLab::NodeAddress(const std::string& node) const {
  return prefix_ + std::to_string(10 + Index(node));
}

std::string NetnsLab::NetnsPath(const std::string& node) const {
  return "/run/netns/" + NetnsName(Index(node));
}

std::vector<std::string> NetnsLab::NodeAddresses() const {
  std::vector<std::string> out;
  for (int i = 1; i <= nodes_; ++i) out.push_back(NodeAddress("n" + std::to_string(i)));
  return out;
}

std::string NetnsLab::AgentWrapper() const {
  return "nsenter --net=/run/netns/hafab-" + tag_ + "-{node} --";
}

Status NetnsLab::Create(int nodes) {
  if (created_) return Status::Ok();
  RemoveStale();
  pid_t pid = getpid();
  tag_ = std::to_string(pid);
  // A /24 of 10/8 per harness process: 10.(64 + pid/256 % 128).(pid % 256).0/24.
  prefix_ = "10." + std::to_string(64 + (pid / 256) % 128) + "." + std::to_string(pid % 256) + ".";
  host_address_ = prefix_ + "1";
  nodes_ = nodes;
  created_ = true;  // from here on Destroy() removes whatever was made
  std::string br = "hfb" + tag_;
  std::vector<std::string> cmds = {"ip link add " + br + " type bridge",
                                   "ip addr add " + host_address_ + "/24 dev " + br,
                                   "ip link set " + br + " up"};
  for (int i = 1; i <= nodes; ++i) {
    std::string ns = NetnsName(i), host = HostVeth(i),
                peer = "hfp" + tag_ + "n" + std::to_string(i);
    std::string addr = NodeAddress("n" + std::to_string(i));
    for (std::string c : {"ip netns add " + ns, "ip -n " + ns + " link set lo up",
                          "ip link add " + host + " type veth peer name " + peer,
                          "ip link set " + peer + " netns " + ns,
                          "ip -n " + ns + " addr add " + addr + "/24 dev " + peer,
                          "ip -n " + ns + " link set " + peer + " up",
                          "ip link set " + host + " master " + br, "ip link set " + host + " up"}) {
      cmds.push_back(c);
    }
  }
  for (const auto& c : cmds) {
    std::string out;
    if (RunShell(c, &out) != 0) {
      (void)Destroy();
      return Status::Unavailable("network namespaces refused: `" + c + "` failed: " + out);
    }
  }
  return Status::Ok();
}

Status NetnsLab::Destroy() {
  if (!created_) return Status::Ok();
  std::string failed;
  for (int i = 1; i <= nodes_; ++i) {
    std::string out;
    // Deleting the namespace destroys the veth pair with it (once no process is inside).
    if (RunShell("ip netns del " + NetnsName(i), &out) != 0 &&
        out.find("No such file") == std::string::npos) {
      failed += " " + NetnsName(i) + ": " + out;
    }
    RunShell("ip link del " + HostVeth(i));  // gone already unless a process kept the namespace
  }
  std::string out;
  if (RunShell("ip link del hfb" + tag_, &out) != 0 &&
      out.find("Cannot find device") == std::string::npos) {
    failed += " hfb" + tag_ + ": " + out;
  }
  created_ = false;
  if (!failed.empty()) return Status::Internal("netns cleanup:" + failed);
  return Status::Ok();
}

Status NetnsLab::Cut(const std::string& node) {
  std::string out;
  if (RunShell("ip link set " + HostVeth(Index(node)) + " down", &out) != 0) {
    return Status::Internal("cutting " + node + ": " + out);
  }
  return Status::Ok();
}

Status NetnsLab::Heal(const std::string& node) {
  std::string out;
  if (RunShell("ip link set " + HostVeth(Index(node)) + " up", &out) != 0) {
    return Status::Internal("healing " + node + ": " + out);
  }
  return Status::Ok();
}

}  // namespace hafab::faults
