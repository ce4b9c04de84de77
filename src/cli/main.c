#include "cli/cli.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} subcommands[] = {
	{ "run", cmd_run, "start a virtual machine" },
	{ "run-user", cmd_run_user, "run a static x86-64 Linux program on the software CPU" },
	{ "img", cmd_img, "create, inspect and convert disk images (qemu-img compatible)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: maquina <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].help);
	fprintf(f, "\n'maquina <command> --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	log_set_progname("maquina");
	const char *lvl = getenv("MAQUINA_LOG");
	if (lvl)
		log_set_level(!strcmp(lvl, "debug") ? LOG_DEBUG : !strcmp(lvl, "info") ? LOG_INFO : LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("maquina 0.1.0\n");
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	log_error("'%s' is not a maquina command; 'maquina --help' lists them", argv[1]);
	return 1;
}
