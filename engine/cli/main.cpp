// budstikke: the command-line entry point. See `budstikke --help`.

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "engine/cli/commands.hpp"
#include "engine/core/log.hpp"

namespace {

void print_help() {
  std::printf(
      "budstikke - integration engine for Norwegian health messaging (e-meldinger, HL7 v2)\n\n"
      "usage: budstikke <command> [options]\n\n"
      "commands:\n");
  for (const auto& c : budstikke::cli::commands()) std::printf("  %-18s %s\n", c.name, c.summary);
  std::printf(
      "\n'budstikke help <command>' or 'budstikke <command> --help' shows a command's options.\n"
      "Exit codes: 0 success, 1 the work failed (e.g. a message was rejected), 2 usage or\n"
      "configuration error.\n");
}

}  // namespace

int main(int argc, char** argv) {
  using budstikke::cli::commands;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  if (name == "--version") name = "version";
  budstikke::cli::Args args(argv + 2, argv + argc);
  if (name == "help") {
    if (args.empty()) {
      print_help();
      return 0;
    }
    name = args[0];
    args = {"--help"};
  }
  // Tools report Kafka trouble in one line of their own; librdkafka's retries would bury it.
  if (name != "run") budstikke::log::set_module_level("librdkafka", budstikke::log::Level::kOff);
  for (const auto& c : commands()) {
    if (name != c.name) continue;
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::printf("%s", c.usage);
      return 0;
    }
    try {
      return c.run(args);
    } catch (const std::exception& e) {
      // Only configuration loading may throw; the message path returns errors as values.
      std::fprintf(stderr, "budstikke %s: %s\n", c.name, e.what());
      return 2;
    }
  }
  std::fprintf(stderr, "budstikke: unknown command '%s' (see budstikke --help)\n", name.c_str());
  return 2;
}
