/*
 * The decoder's side of test_decode_len.c, in its own file because
 * capstone's headers and cpu_int.h both define 'x86_insn'.
 */
#include "cpu/x86/cpu_int.h"
#include "cpu/x86/handlers.h"
#include "decode_helper.h"

#include <stdlib.h>

static void *no_page(void *o, uint64_t gpa, bool *w)
{
	(void)o; (void)gpa; (void)w;
	return NULL;
}

static int no_read(void *o, uint64_t gpa, unsigned size, uint64_t *val)
{
	(void)o; (void)gpa; (void)size; (void)val;
	return -1;
}

static int no_write(void *o, uint64_t gpa, unsigned size, uint64_t val)
{
	(void)o; (void)gpa; (void)size; (void)val;
	return -1;
}

static const struct x86_mem_ops ops = { no_page, no_read, no_write };
static struct x86_cpu *cpu;

int dh_init(void)
{
	struct x86_cpu_config cfg = { .user_mode = true };
	cpu = x86_cpu_new(&ops, NULL, &cfg);
	return cpu ? 0 : -1;
}

void dh_fini(void)
{
	x86_cpu_free(cpu);
}

int dh_decode(const uint8_t *bytes, unsigned avail, unsigned *len, unsigned *op)
{
	struct x86_insn i;
	if (x86_decode(cpu, 0x1000, bytes, avail, &i) < 0)
		return -1;
	*len = i.len;
	*op = i.op;
	if (i.fn == x86_h_ud)
		return DH_UD;
	if (i.fn == x86_h_gp0)
		return DH_TOO_LONG;
	return DH_OK;
}
