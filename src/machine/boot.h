/* Private to machine/: helpers shared by the loaders. */
#ifndef MAQUINA_MACHINE_BOOT_H
#define MAQUINA_MACHINE_BOOT_H

#include <stdarg.h>
#include <stdio.h>

#include "machine/machine.h"

/* Writes the boot GDT (and, for long mode, the identity page tables for
 * 0-4 GiB at PC_PML4) into mem and fills cpu with flat segments: code
 * selector 0x10, data 0x18 (boot.rst's __BOOT_CS/__BOOT_DS), RSP
 * PC_BOOT_STACK, RFLAGS 2.  Returns 0 or -EFAULT. */
int boot_setup_cpu(struct mem *mem, struct boot_cpu_state *cpu, enum boot_mode mode);

/* Formats err->msg and returns ret (a negative errno). */
static inline int __attribute__((format(printf, 3, 4)))
loader_fail(struct loader_error *err, int ret, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return ret;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

#endif
