// shmkit: the command line for shmkit's System V objects (see cli.h and
// `shmkit --help`).
#include "tools/shmkit/cli.h"

int main(int argc, char** argv) { return shmkit::cli::Main(argc, argv); }
