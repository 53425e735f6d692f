#pragma once
// Subcommands of the budstikke binary. Each takes its own arguments (after the subcommand
// name) and returns the process exit code: 0 success, 1 failure of the work itself (a
// rejected message, a failed check), 2 usage or configuration errors.

#include <string>
#include <vector>

namespace budstikke::cli {

using Args = std::vector<std::string>;

struct Command {
  const char* name;
  const char* summary;
  const char* usage;  // full help text
  int (*run)(const Args& args);
};

const std::vector<Command>& commands();

int cmd_run(const Args& args);
int cmd_version(const Args& args);
int cmd_lint(const Args& args);
int cmd_config_reference(const Args& args);
int cmd_topics(const Args& args);
int cmd_decode(const Args& args);
int cmd_consume(const Args& args);
int cmd_send(const Args& args);
int cmd_track(const Args& args);
int cmd_replay(const Args& args);
int cmd_audit(const Args& args);
int cmd_test(const Args& args);
int cmd_dry_run(const Args& args);

}  // namespace budstikke::cli
