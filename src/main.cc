// barge: reads flags, builds the parts and runs one subcommand. All logic lives in barge_core.
#include "cli/commands.h"

int main(int argc, char** argv) { return barge::Main(argc, argv); }
