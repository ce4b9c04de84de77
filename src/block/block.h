/*
 * block: block drivers (raw, qcow2) and the engine of 'maquina img'.
 */
#ifndef MAQUINA_BLOCK_H
#define MAQUINA_BLOCK_H

/* 'maquina img ...': argv[0] is "img".  Returns the exit status, with
 * qemu-img's conventions. */
int img_main(int argc, char **argv);

#endif
