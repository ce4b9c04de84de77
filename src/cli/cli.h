/*
 * cli: the maquina command's subcommands.  Each takes the arguments after
 * its own name (argv[0] is the subcommand name) and returns the process
 * exit status.
 */
#ifndef MAQUINA_CLI_H
#define MAQUINA_CLI_H

int cmd_run(int argc, char **argv);
int cmd_run_user(int argc, char **argv);
int cmd_img(int argc, char **argv);

#endif
