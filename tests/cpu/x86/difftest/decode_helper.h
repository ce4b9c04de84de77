/* The decoder entry point for test_decode_len.c (see decode_helper.c). */
#ifndef MAQUINA_TESTS_DECODE_HELPER_H
#define MAQUINA_TESTS_DECODE_HELPER_H

#include <stdint.h>

enum { DH_OK, DH_UD, DH_TOO_LONG };

int dh_init(void);
void dh_fini(void);
/* Decodes bytes[0..avail) in 64-bit mode: DH_OK with *len and *op (map <<
 * 8 | opcode) for an instruction the CPU executes, DH_UD, DH_TOO_LONG, or
 * -1 when more bytes were needed. */
int dh_decode(const uint8_t *bytes, unsigned avail, unsigned *len, unsigned *op);

#endif
