/*
 * main.c: the rotator command line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotator/cli.h"
#include "rotator/daemon.h"

static const char usage[] =
	"usage: rotator [-c FILE] COMMAND [ARGS]\n"
	"\n"
	"Keeps every node of a PostgreSQL or Redis cluster young: replaces\n"
	"each with a fresh node born from a verified restore point, with no\n"
	"lost write.\n"
	"\n"
	"options:\n"
	"  -c, --config FILE  configuration (default $ROTATOR_CONFIG or\n"
	"                     ./rotator.json)\n"
	"  -h, --help         show this help\n"
	"  -V, --version      show the version\n"
	"\n"
	"commands:\n"
	"  serve                                 run the coordinator\n"
	"  status [CLUSTER] [--json]             members, rotations, schedule\n"
	"  rotate CLUSTER [--node ID] [--reason TEXT] [--wait]\n"
	"                                        replace every node, or one\n"
	"  snapshot take CLUSTER                 take a restore point now\n"
	"  snapshot list CLUSTER [--json]        list restore points\n"
	"  snapshot verify ID                    check a restore point\n"
	"  audit list [--cluster C] [--json]     show the audit log\n"
	"  audit verify                          check the audit log's chain\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config = getenv("ROTATOR_CONFIG");
	const char *cmd;
	int c;

	if (!config || !*config)
		config = "rotator.json";
	argv[0] = "rotator"; /* getopt's messages start with it */
	while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("rotator %s\n", ROTATOR_VERSION);
			return 0;
		default:
			fprintf(stderr, "try \"rotator --help\"\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "rotator: no command given\n"
				"try \"rotator --help\"\n");
		return 2;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "serve") == 0) {
		if (argc == 1)
			return daemon_serve(config);
		fprintf(stderr, "rotator: serve takes no arguments\n"
				"try \"rotator --help\"\n");
		return 2;
	}
	if (strcmp(cmd, "status") == 0)
		return cli_status(config, argc, argv);
	if (strcmp(cmd, "rotate") == 0)
		return cli_rotate(config, argc, argv);
	if (strcmp(cmd, "snapshot") == 0)
		return cli_snapshot(config, argc, argv);
	if (strcmp(cmd, "audit") == 0)
		return cli_audit(config, argc, argv);
	fprintf(stderr,
		"rotator: unknown command \"%s\"\n"
		"try \"rotator --help\"\n",
		cmd);
	return 2;
}
