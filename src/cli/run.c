#include "cli/cli.h"
#include "core/core.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	log_error("run: booting a virtual machine is not implemented yet; "
		  "'maquina run-user PROGRAM' runs a static x86-64 program on the software CPU");
	return 1;
}
