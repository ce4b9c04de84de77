/*
 * Capstone for the mismatch reports (kept apart from cpu_int.h: capstone's
 * x86.h has its own 'x86_insn').
 */
#include "difftest.h"

#include <capstone/capstone.h>
#include <stdio.h>

static csh cs;
static bool cs_ok;

void dt_disasm_init(void)
{
	cs_ok = cs_open(CS_ARCH_X86, CS_MODE_64, &cs) == CS_ERR_OK;
}

void dt_disasm_fini(void)
{
	if (cs_ok)
		cs_close(&cs);
	cs_ok = false;
}

void dt_disasm(const uint8_t *code, unsigned len, uint64_t addr, char *out, size_t outlen)
{
	cs_insn *ins = NULL;
	size_t n = cs_ok ? cs_disasm(cs, code, len, addr, 1, &ins) : 0;
	if (n) {
		snprintf(out, outlen, "%s %s", ins->mnemonic, ins->op_str);
		cs_free(ins, n);
	} else {
		snprintf(out, outlen, "(capstone: invalid)");
	}
}
