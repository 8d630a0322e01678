// Reading the process table (/proc) for `hafab up` and `hafab kill`.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace hafab::cli {

// Every live descendant of `root` (children, grandchildren, ...), not `root` itself.
std::vector<pid_t> Descendants(pid_t root);

// The value of environment variable `name` in process `pid`; "" when absent or unreadable.
std::string EnvironOf(pid_t pid, const std::string& name);

// True when `pid` exists and is not a zombie.
bool Alive(pid_t pid);

// The path of the running executable (/proc/self/exe).
std::string SelfExe();

}  // namespace hafab::cli
