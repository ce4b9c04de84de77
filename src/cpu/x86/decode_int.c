/*
 * Handler selection for the integer opcodes of the one-byte and 0F maps
 * (the second integer family has its own selector in x86_select_int2()).
 */
#include "cpu/x86/alu.h"
#include "cpu/x86/sys.h"

static x86_handler_fn pick(const x86_handler_fn t[4], unsigned size)
{
	return t[x86_szlog(size)];
}

/* Relative branch: resolve the target now. */
static void rel_target(struct x86_insn *i)
{
	uint64_t t = i->next_rip + i->imm;
	i->imm = i->osz == 8 ? t : x86_zext(t, i->osz);
	i->flags |= X86_IF_END;
}

/* ALU with ModRM: op 0..7 (8 = TEST); dir 0: E,G; 1: G,E. */
static void sel_alu_modrm(struct x86_insn *i, unsigned op, unsigned dir)
{
	unsigned lg = x86_szlog(i->osz);
	if (i->osz == 1) {
		x86_fix_r8_reg(i);
		x86_fix_r8_rm(i);
	}
	i->aux = (uint8_t)op;
	if (!i->is_mem) {
		if (dir == 0) { /* E op= G: destination is rm */
			uint8_t t = i->reg;
			i->reg = i->rm;
			i->rm = t;
		}
		i->fn = x86_alu_rr[op][lg];
	} else if (dir == 1) {
		i->fn = x86_alu_rm[op][lg];
	} else if ((i->pfx & X86_PFX_LOCK) && op < 7) {
		i->fn = x86_h_alu_lock_mr;
		i->flags |= X86_IF_LOCKOK;
	} else {
		i->fn = x86_alu_mr[op][lg];
		if (op < 7)
			i->flags |= X86_IF_LOCKOK;
	}
}

static void sel_alu_imm(struct x86_insn *i, unsigned op)
{
	unsigned lg = x86_szlog(i->osz);
	if (i->osz == 1)
		x86_fix_r8_rm(i);
	i->imm = x86_zext(i->imm, i->osz);
	i->aux = (uint8_t)op;
	if (!i->is_mem) {
		i->fn = x86_alu_ri[op][lg];
	} else if ((i->pfx & X86_PFX_LOCK) && op < 7) {
		i->fn = x86_h_alu_lock_mi;
		i->flags |= X86_IF_LOCKOK;
	} else {
		i->fn = x86_alu_mi[op][lg];
		if (op < 7)
			i->flags |= X86_IF_LOCKOK;
	}
}

static bool sel_map0(struct x86_insn *i, unsigned opc, unsigned mode, unsigned mpfx)
{
	unsigned r = (i->modrm >> 3) & 7;

	if (opc < 0x40 && (opc & 7) < 6) {
		unsigned op = opc >> 3, form = opc & 7;
		if (form >= 4) { /* AL/rAX, imm */
			if (form == 4)
				i->osz = 1;
			i->rm = X86_RAX;
			sel_alu_imm(i, op);
			return true;
		}
		if (!(form & 1))
			i->osz = 1;
		sel_alu_modrm(i, op, (form >> 1) & 1);
		return true;
	}
	if (opc >= 0x40 && opc <= 0x4f) { /* INC/DEC r (16/32-bit modes only) */
		i->rm = opc & 7;
		i->fn = (opc < 0x48 ? x86_inc_r : x86_dec_r)[x86_szlog(i->osz)];
		return true;
	}
	if (opc >= 0x50 && opc <= 0x57) {
		i->rm = (uint8_t)((opc & 7) | ((i->rex & 1) ? 8 : 0));
		i->fn = x86_h_push_r;
		return true;
	}
	if (opc >= 0x58 && opc <= 0x5f) {
		i->rm = (uint8_t)((opc & 7) | ((i->rex & 1) ? 8 : 0));
		i->fn = x86_h_pop_r;
		return true;
	}
	if (opc >= 0x70 && opc <= 0x7f) {
		i->aux = opc & 15;
		rel_target(i);
		i->fn = x86_h_jcc;
		return true;
	}
	if (opc >= 0x91 && opc <= 0x97) {
		i->reg = X86_RAX;
		i->rm = (uint8_t)((opc & 7) | ((i->rex & 1) ? 8 : 0));
		i->fn = x86_h_xchg_rr;
		return true;
	}
	if (opc >= 0xb0 && opc <= 0xb7) {
		i->osz = 1;
		i->rm = (uint8_t)((opc & 7) | ((i->rex & 1) ? 8 : 0));
		x86_fix_r8_rm(i);
		i->fn = x86_mov_ri[0];
		return true;
	}
	if (opc >= 0xb8 && opc <= 0xbf) {
		i->rm = (uint8_t)((opc & 7) | ((i->rex & 1) ? 8 : 0));
		i->fn = pick(x86_mov_ri, i->osz);
		return true;
	}

	switch (opc) {
	case 0x06: case 0x0e: case 0x16: case 0x1e:
		i->aux = opc >> 3;
		i->fn = x86_h_push_seg;
		return true;
	case 0x07: case 0x17: case 0x1f:
		i->aux = opc >> 3;
		i->fn = x86_h_pop_seg;
		i->flags |= X86_IF_END;
		return true;
	case 0x63:
		if (mode != 8)
			return false; /* ARPL: protected mode only, comes later */
		i->fn = x86_h_movsxd;
		return true;
	case 0x68: case 0x6a:
		i->fn = x86_h_push_imm;
		if (i->osz != 8)
			i->imm = x86_zext(i->imm, i->osz);
		return true;
	case 0x80: case 0x81: case 0x82: case 0x83:
		if (opc != 0x81)
			i->osz = opc == 0x83 ? i->osz : 1;
		sel_alu_imm(i, r);
		return true;
	case 0x84: case 0x85:
		if (opc == 0x84)
			i->osz = 1;
		sel_alu_modrm(i, 8, 1);
		return true;
	case 0x86: case 0x87:
		if (opc == 0x86) {
			i->osz = 1;
			x86_fix_r8_reg(i);
			x86_fix_r8_rm(i);
		}
		i->fn = i->is_mem ? x86_h_xchg_mr : x86_h_xchg_rr;
		if (i->is_mem)
			i->flags |= X86_IF_LOCKOK;
		return true;
	case 0x88: case 0x89: case 0x8a: case 0x8b:
		if (!(opc & 1)) {
			i->osz = 1;
			x86_fix_r8_reg(i);
			x86_fix_r8_rm(i);
		}
		if (!i->is_mem) {
			if (!(opc & 2)) { /* MOV E, G */
				uint8_t t = i->reg;
				i->reg = i->rm;
				i->rm = t;
			}
			i->fn = pick(x86_mov_rr, i->osz);
		} else {
			i->fn = pick((opc & 2) ? x86_mov_rm : x86_mov_mr, i->osz);
		}
		return true;
	case 0x8c:
		i->fn = x86_h_mov_from_seg;
		return true;
	case 0x8d:
		if (!i->is_mem)
			return false;
		i->fn = (i->osz == 8 && i->asz == 8) ? x86_h_lea64 : x86_h_lea;
		return true;
	case 0x8e:
		i->fn = x86_h_mov_to_seg;
		i->flags |= X86_IF_END;
		return true;
	case 0x9a:
		i->fn = x86_h_call_far_imm;
		i->flags |= X86_IF_END;
		return true;
	case 0xea:
		i->fn = x86_h_jmp_far_imm;
		i->flags |= X86_IF_END;
		return true;
	case 0xc4: case 0xc5:
		if (!i->is_mem)
			return false;
		i->aux = opc == 0xc4 ? X86_ES : X86_DS;
		i->fn = x86_h_load_far_ptr;
		i->flags |= X86_IF_END;
		return true;
	case 0xca: case 0xcb:
		if (opc == 0xcb)
			i->imm = 0;
		i->fn = x86_h_retf;
		i->flags |= X86_IF_END;
		return true;
	case 0xce:
		i->fn = x86_h_into;
		i->flags |= X86_IF_END;
		return true;
	case 0xcf:
		i->fn = x86_h_iret;
		i->flags |= X86_IF_END;
		return true;
	case 0x8f:
		if (r != 0)
			return false;
		i->fn = x86_h_pop_rm;
		return true;
	case 0x90:
		if ((i->rex & 1)) { /* XCHG R8, RAX */
			i->reg = X86_RAX;
			i->rm = 8;
			i->fn = x86_h_xchg_rr;
		} else {
			i->fn = mpfx == X86_MP_F3 && (i->pfx & X86_PFX_REP) ? x86_h_pause : x86_h_nop;
		}
		return true;
	case 0x98: i->fn = x86_h_cbw; return true;
	case 0x99: i->fn = x86_h_cwd; return true;
	case 0x9b: i->fn = x86_h_fwait; return true;
	case 0x9c: i->fn = x86_h_pushf; return true;
	case 0x9d: i->fn = x86_h_popf; i->flags |= X86_IF_END; return true;
	case 0x9e: i->fn = x86_h_sahf; return true;
	case 0x9f: i->fn = x86_h_lahf; return true;
	case 0xa0: case 0xa1: case 0xa2: case 0xa3:
		if (!(opc & 1))
			i->osz = 1;
		i->fn = (opc & 2) ? x86_h_mov_moffs_store : x86_h_mov_moffs_load;
		return true;
	case 0xa8: case 0xa9:
		if (opc == 0xa8)
			i->osz = 1;
		i->rm = X86_RAX;
		sel_alu_imm(i, 8);
		return true;
	case 0xc2: case 0xc3:
		if (opc == 0xc3)
			i->imm = 0;
		i->fn = x86_h_ret;
		i->flags |= X86_IF_END;
		return true;
	case 0xc6: case 0xc7:
		if (r != 0)
			return false;
		if (opc == 0xc6) {
			i->osz = 1;
			x86_fix_r8_rm(i);
		}
		i->fn = pick(i->is_mem ? x86_mov_mi : x86_mov_ri, i->osz);
		return true;
	case 0xc8: i->fn = x86_h_enter; i->seg = X86_SS; return true; /* faults are #SS */
	case 0xc9: i->fn = x86_h_leave; i->seg = X86_SS; return true;
	case 0xcc: i->fn = x86_h_int3; i->flags |= X86_IF_END; return true;
	case 0xcd: i->fn = x86_h_int; i->flags |= X86_IF_END; return true;
	case 0xd7: i->fn = x86_h_xlat; return true;
	case 0xe0: case 0xe1: case 0xe2:
		i->aux = opc & 3;
		rel_target(i);
		i->fn = x86_h_loop;
		return true;
	case 0xe3:
		rel_target(i);
		i->fn = x86_h_jrcxz;
		return true;
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:
	case 0xec: case 0xed: case 0xee: case 0xef:
		i->fn = x86_h_io;
		i->flags |= X86_IF_END;
		return true;
	case 0xe8:
		rel_target(i);
		i->fn = x86_h_call_rel;
		return true;
	case 0xe9: case 0xeb:
		rel_target(i);
		i->fn = x86_h_jmp_rel;
		return true;
	case 0xf1: i->fn = x86_h_int1; i->flags |= X86_IF_END; return true; /* INT1 */
	case 0xf4: i->fn = x86_h_hlt; i->flags |= X86_IF_END; return true;
	case 0xf5: i->aux = 2; i->fn = x86_h_flagop; return true;
	case 0xf6: case 0xf7:
		if (opc == 0xf6)
			i->osz = 1;
		if (r == 0 || r == 1) {
			sel_alu_imm(i, 8);
			return true;
		}
		if (r == 2 || r == 3) {
			if (opc == 0xf6)
				x86_fix_r8_rm(i);
			i->aux = (uint8_t)r;
			i->fn = x86_h_unary;
			if (i->is_mem)
				i->flags |= X86_IF_LOCKOK;
			return true;
		}
		return false; /* MUL..IDIV: second family */
	case 0xf8: case 0xf9:
		i->aux = opc & 1;
		i->fn = x86_h_flagop;
		return true;
	case 0xfa:
		i->fn = x86_h_cli;
		return true;
	case 0xfb:
		i->fn = x86_h_sti;
		i->flags |= X86_IF_END;
		return true;
	case 0xfc: case 0xfd:
		i->aux = (uint8_t)(3 + (opc & 1));
		i->fn = x86_h_flagop;
		return true;
	case 0xfe:
		if (r > 1)
			return false;
		i->osz = 1;
		x86_fix_r8_rm(i);
		i->aux = (uint8_t)r;
		i->fn = i->is_mem ? x86_h_unary : (r ? x86_dec_r[0] : x86_inc_r[0]);
		if (i->is_mem)
			i->flags |= X86_IF_LOCKOK;
		return true;
	case 0xff:
		switch (r) {
		case 0: case 1:
			i->aux = (uint8_t)r;
			i->fn = i->is_mem ? x86_h_unary : (r ? x86_dec_r : x86_inc_r)[x86_szlog(i->osz)];
			if (i->is_mem)
				i->flags |= X86_IF_LOCKOK;
			return true;
		case 2: case 4:
			if (mode == 8)
				i->osz = 8;
			i->fn = r == 2 ? x86_h_call_rm : x86_h_jmp_rm;
			i->flags |= X86_IF_END;
			return true;
		case 6:
			if (mode == 8)
				i->osz = (i->pfx & X86_PFX_OPSZ) && !(i->pfx & X86_PFX_REXW) ? 2 : 8;
			i->fn = x86_h_push_rm;
			return true;
		case 3: case 5:
			if (!i->is_mem)
				return false;
			i->aux = r == 3;
			i->fn = x86_h_far_rm;
			i->flags |= X86_IF_END;
			return true;
		default:
			return false;
		}
	default:
		return false;
	}
}

static bool sel_map1(struct x86_insn *i, unsigned opc, unsigned mode, unsigned mpfx)
{
	unsigned r = (i->modrm >> 3) & 7;
	(void)mode;

	if (opc >= 0x40 && opc <= 0x4f) {
		i->aux = opc & 15;
		i->fn = x86_h_cmov;
		return true;
	}
	if (opc >= 0x80 && opc <= 0x8f) {
		i->aux = opc & 15;
		rel_target(i);
		i->fn = x86_h_jcc;
		return true;
	}
	if (opc >= 0x90 && opc <= 0x9f) {
		i->aux = opc & 15;
		x86_fix_r8_rm(i);
		i->fn = x86_h_setcc;
		return true;
	}
	if (opc >= 0xc8 && opc <= 0xcf) {
		i->rm = (uint8_t)((opc & 7) | ((i->rex & 1) ? 8 : 0));
		i->fn = x86_h_bswap;
		return true;
	}
	switch (opc) {
	case 0x00:
		i->fn = x86_h_grp6;
		i->flags |= X86_IF_END;
		return true;
	case 0x01:
		if (!i->is_mem && i->modrm != 0xf8)
			return false; /* MONITOR, XGETBV, RDTSCP, VMX...: not advertised */
		if (!i->is_mem && mode != 8)
			return false; /* SWAPGS is 64-bit only */
		i->fn = x86_h_grp7;
		i->flags |= X86_IF_END;
		return true;
	case 0x06: i->fn = x86_h_clts; return true;
	case 0x07: i->fn = x86_h_sysret; i->flags |= X86_IF_END; return true;
	case 0x08: case 0x09: i->fn = x86_h_wbinvd; return true;
	case 0x20: case 0x21: case 0x22: case 0x23:
		i->fn = opc & 1 ? x86_h_mov_dr : x86_h_mov_cr;
		if (opc >= 0x22)
			i->flags |= X86_IF_END;
		return true;
	case 0x30: i->fn = x86_h_wrmsr; i->flags |= X86_IF_END; return true;
	case 0x32: i->fn = x86_h_rdmsr; return true;
	case 0x33: i->fn = x86_h_priv; i->flags |= X86_IF_END; return true; /* RDPMC with CR4.PCE clear */
	case 0xb2: case 0xb4: case 0xb5:
		if (!i->is_mem)
			return false;
		i->aux = opc == 0xb2 ? X86_SS : opc == 0xb4 ? X86_FS : X86_GS;
		i->fn = x86_h_load_far_ptr;
		i->flags |= X86_IF_END;
		return true;
	case 0x05:
		i->fn = x86_h_syscall;
		i->flags |= X86_IF_END;
		return true;
	case 0x0b: /* UD2 */
		return false;
	case 0x0d:
		if (!i->is_mem)
			return false;
		i->fn = x86_h_nop; /* PREFETCH/PREFETCHW */
		return true;
	case 0x18: case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x1f:
		i->fn = x86_h_nop; /* hint NOPs, PREFETCHh, ENDBR */
		return true;
	case 0x31: i->fn = x86_h_rdtsc; return true;
	case 0xa2: i->fn = x86_h_cpuid; return true;
	case 0xa0: case 0xa8:
		i->aux = opc == 0xa0 ? X86_FS : X86_GS;
		i->fn = x86_h_push_seg;
		return true;
	case 0xa1: case 0xa9:
		i->aux = opc == 0xa1 ? X86_FS : X86_GS;
		i->fn = x86_h_pop_seg;
		i->flags |= X86_IF_END;
		return true;
	case 0xae:
		if (!i->is_mem) {
			if (mpfx == X86_MP_F3 && (i->pfx & X86_PFX_REP) && r < 4) {
				i->fn = x86_h_rdfsgsbase;
				return true;
			}
			if (r >= 5 && !(i->pfx & (X86_PFX_OPSZ | X86_PFX_REP | X86_PFX_REPNE))) {
				i->fn = x86_h_fence;
				return true;
			}
			return false;
		}
		if (i->pfx & (X86_PFX_REP | X86_PFX_REPNE))
			return false;
		switch (r) {
		case 0: if (i->pfx & X86_PFX_OPSZ) return false; i->fn = x86_h_fxsave; return true;
		case 1: if (i->pfx & X86_PFX_OPSZ) return false; i->fn = x86_h_fxrstor; return true;
		case 2: if (i->pfx & X86_PFX_OPSZ) return false; i->fn = x86_h_ldmxcsr; return true;
		case 3: if (i->pfx & X86_PFX_OPSZ) return false; i->fn = x86_h_stmxcsr; return true;
		case 7: if (i->pfx & X86_PFX_OPSZ) return false; i->fn = x86_h_clflush; return true;
		default: return false; /* XSAVE family: not advertised */
		}
	case 0xb0: case 0xb1:
		if (opc == 0xb0) {
			i->osz = 1;
			x86_fix_r8_reg(i);
			x86_fix_r8_rm(i);
		}
		i->fn = x86_h_cmpxchg;
		if (i->is_mem)
			i->flags |= X86_IF_LOCKOK;
		return true;
	case 0xb6: case 0xb7: case 0xbe: case 0xbf:
		i->aux = (opc & 1) ? 2 : 1;
		if (i->aux == 1)
			x86_fix_r8_rm(i);
		i->fn = x86_pick_movx(i, opc >= 0xb8);
		if (!i->fn)
			i->fn = opc < 0xb8 ? x86_h_movzx : x86_h_movsx;
		return true;
	case 0xc0: case 0xc1:
		if (opc == 0xc0) {
			i->osz = 1;
			x86_fix_r8_reg(i);
			x86_fix_r8_rm(i);
		}
		i->fn = x86_h_xadd;
		if (i->is_mem)
			i->flags |= X86_IF_LOCKOK;
		return true;
	case 0xc7:
		if (r == 1 && i->is_mem && !(i->pfx & (X86_PFX_REP | X86_PFX_REPNE))) {
			i->osz = (i->pfx & X86_PFX_REXW) ? 8 : 4;
			i->fn = x86_h_cmpxchg8b16b;
			i->flags |= X86_IF_LOCKOK;
			return true;
		}
		return false; /* RDRAND/RDSEED/RDPID, VMX: not advertised */
	default:
		return false;
	}
}

bool x86_select_int(struct x86_insn *i, unsigned map, unsigned opc, unsigned mode, unsigned mpfx)
{
	if (map == 0)
		return sel_map0(i, opc, mode, mpfx);
	if (map == 1)
		return sel_map1(i, opc, mode, mpfx);
	return false;
}
