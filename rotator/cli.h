/*
 * cli.h: the subcommands other than "serve".  Each returns the process
 * exit status: 0 success, 1 failure, 2 bad usage or configuration.
 */
#ifndef ROTATOR_CLI_H
#define ROTATOR_CLI_H

int cli_status(const char *config, int argc, char **argv);
int cli_rotate(const char *config, int argc, char **argv);
int cli_snapshot(const char *config, int argc, char **argv);
int cli_audit(const char *config, int argc, char **argv);

#endif
