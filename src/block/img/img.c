/*
 * 'maquina img': qemu-img's subcommands, options, output and exit codes,
 * on maquina's block layer.
 */
#include "block/img/img_int.h"

#include <stdio.h>
#include <string.h>

static const struct img_cmd {
	const char *name;
	img_cmd_fn *fn;
	const char *syntax;
} img_cmds[] = {
	{ "amend", img_cmd_amend, "amend [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename" },
	{ "bench", img_cmd_bench, "bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename" },
	{ "check", img_cmd_check, "check [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename" },
	{ "commit", img_cmd_commit, "commit [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename" },
	{ "compare", img_cmd_compare, "compare [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2" },
	{ "convert", img_cmd_convert, "convert [--target-is-zero] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] [-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] filename [filename2 [...]] output_filename" },
	{ "create", img_cmd_create, "create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]" },
	{ "dd", img_cmd_dd, "dd [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output" },
	{ "info", img_cmd_info, "info [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename" },
	{ "map", img_cmd_map, "map [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename" },
	{ "measure", img_cmd_measure, "measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [-f fmt] [-l snapshot_param] filename]" },
	{ "snapshot", img_cmd_snapshot, "snapshot [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename" },
	{ "rebase", img_cmd_rebase, "rebase [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] filename" },
	{ "resize", img_cmd_resize, "resize [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size" },
};

static void img_help(void)
{
	printf("usage: maquina img [standard options] command [command options]\n"
	       "Disk image utility (qemu-img compatible)\n\n"
	       "    '-h', '--help'       display this help and exit\n"
	       "    '-V', '--version'    output version information and exit\n\n"
	       "Command syntax:\n");
	for (size_t i = 0; i < ARRAY_SIZE(img_cmds); i++)
		printf("  %s\n", img_cmds[i].syntax);
	printf("\nCommand parameters:\n"
	       "  'filename' is a disk image filename\n"
	       "  'fmt' is the disk image format: 'raw' or 'qcow2'\n"
	       "  'size' is the disk image size in bytes; optional suffixes 'k' or 'K'\n"
	       "    (kilobyte, 1024), 'M' (megabyte, 1024k), 'G', 'T', 'P' and 'E'\n"
	       "  'output_filename' is the destination disk image filename\n"
	       "  'output_fmt' is the destination format\n"
	       "  'options' is a comma separated list of format specific options in a\n"
	       "    name=value format; use -o help for an overview of the options\n\n"
	       "Exit codes are qemu-img's: 0 success, 1 error; check: 2 corruptions,\n"
	       "3 leaks only, 63 checks not supported; compare: 1 different, 2 error.\n");
}

int img_main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2)
		return img_usage("Not enough arguments");
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		img_help();
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("maquina img version 0.1.0 (qemu-img 7.2 compatible)\n");
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(img_cmds); i++)
		if (!strcmp(cmd, img_cmds[i].name))
			return img_cmds[i].fn(argc - 1, argv + 1);
	return img_usage("Command not found: %s", cmd);
}
