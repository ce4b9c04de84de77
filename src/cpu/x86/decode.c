/*
 * The x86 decoder: prefixes, opcode maps, ModRM/SIB/displacement and
 * immediates for 16-, 32- and 64-bit code, producing a struct x86_insn with
 * its handler chosen.  Lengths come from per-map attribute tables; handler
 * selection for integer opcodes is the switch in select_int(), and the
 * SSE, x87 and second integer families have selectors of their own.
 */
#include "cpu/x86/cpu_int.h"
#include "cpu/x86/handlers.h"

#include <errno.h>

/* Operand attribute codes for the immediate, in the SDM's spirit. */
enum {
	I_NONE,
	I_B,   /* imm8 */
	I_W,   /* imm16 */
	I_Z,   /* imm16/32 by operand size (32 for 64-bit operands) */
	I_V,   /* imm16/32/64 by operand size (MOV r, imm) */
	I_WB,  /* imm16 + imm8 (ENTER) */
	I_P,   /* far pointer: imm16/32 + 16-bit selector */
	I_O,   /* moffs: address-size offset */
	I_GRP3, /* F6/F7: imm only for /0 and /1 */
};

#define M 0x80 /* has ModRM */
#define D64 0x40 /* default operand size 64 in 64-bit mode */
#define F64 0x20 /* operand size forced to 64 in 64-bit mode */
#define INV64 0x10 /* invalid in 64-bit mode */

/* One-byte map: ModRM flag | immediate kind | mode flags. */
static const uint8_t map1[256] = {
	/* 00 */ M, M, M, M, I_B, I_Z, INV64, INV64, M, M, M, M, I_B, I_Z, INV64, 0,
	/* 10 */ M, M, M, M, I_B, I_Z, INV64, INV64, M, M, M, M, I_B, I_Z, INV64, INV64,
	/* 20 */ M, M, M, M, I_B, I_Z, 0, INV64, M, M, M, M, I_B, I_Z, 0, INV64,
	/* 30 */ M, M, M, M, I_B, I_Z, 0, INV64, M, M, M, M, I_B, I_Z, 0, INV64,
	/* 40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 50 */ D64, D64, D64, D64, D64, D64, D64, D64, D64, D64, D64, D64, D64, D64, D64, D64,
	/* 60 */ INV64, INV64, M | INV64, M, 0, 0, 0, 0, I_Z | D64, M | I_Z, I_B | D64, M | I_B, 0, 0, 0, 0,
	/* 70 */ I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64,
	/* 78 */ I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B | F64,
	/* 80 */ M | I_B, M | I_Z, M | I_B | INV64, M | I_B, M, M, M, M, M, M, M, M, M, M, M, M | D64,
	/* 90 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, I_P | INV64, 0, D64, D64, 0, 0,
	/* A0 */ I_O, I_O, I_O, I_O, 0, 0, 0, 0, I_B, I_Z, 0, 0, 0, 0, 0, 0,
	/* B0 */ I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_V, I_V, I_V, I_V, I_V, I_V, I_V, I_V,
	/* C0 */ M | I_B, M | I_B, I_W | F64, F64, M | INV64, M | INV64, M | I_B, M | I_Z, I_WB | D64, D64, I_W, 0, 0, I_B, INV64, 0,
	/* D0 */ M, M, M, M, I_B | INV64, I_B | INV64, INV64, 0, M, M, M, M, M, M, M, M,
	/* E0 */ I_B | F64, I_B | F64, I_B | F64, I_B | F64, I_B, I_B, I_B, I_B, I_Z | F64, I_Z | F64, I_P | INV64, I_B | F64, 0, 0, 0, 0,
	/* F0 */ 0, 0, 0, 0, 0, 0, M | I_GRP3, M | I_GRP3, 0, 0, 0, 0, 0, 0, M, M,
};

/* 0F map. */
static const uint8_t map2[256] = {
	/* 00 */ M, M, M, M, 0, 0, 0, 0, 0, 0, 0, 0, 0, M, 0, 0,
	/* 10 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
	/* 20 */ M | F64, M | F64, M | F64, M | F64, 0, 0, 0, 0, M, M, M, M, M, M, M, M,
	/* 30 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 40 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
	/* 50 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
	/* 60 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
	/* 70 */ M | I_B, M | I_B, M | I_B, M | I_B, M, M, M, 0, M, M, 0, 0, M, M, M, M,
	/* 80 */ I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64,
	/* 88 */ I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64, I_Z | F64,
	/* 90 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
	/* A0 */ D64, D64, 0, M, M | I_B, M, 0, 0, D64, D64, 0, M, M | I_B, M, M, M,
	/* B0 */ M, M, M, M, M, M, M, M, M, M, M | I_B, M, M, M, M, M,
	/* C0 */ M, M, M | I_B, M, M | I_B, M | I_B, M | I_B, M, 0, 0, 0, 0, 0, 0, 0, 0,
	/* D0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
	/* E0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
	/* F0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
};

static uint64_t fetch_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned k = 0; k < n; k++)
		v |= (uint64_t)p[k] << (8 * k);
	return v;
}

static bool is_sse_opcode(unsigned map, unsigned opc)
{
	if (map >= 2)
		return true;
	if (map != 1)
		return false;
	return (opc >= 0x10 && opc <= 0x17) || (opc >= 0x28 && opc <= 0x2f) ||
	       (opc >= 0x50 && opc <= 0x7f) || opc == 0xc2 || opc == 0xc3 ||
	       (opc >= 0xc4 && opc <= 0xc6) || opc >= 0xd0;
}

int x86_decode(struct x86_cpu *cpu, uint64_t rip, const uint8_t *bytes,
	       unsigned avail, struct x86_insn *i)
{
	unsigned n = 0, rex = 0, seg = X86_SEG_NONE, map = 0, opc = 0, attr = 0;
	unsigned mode = cpu->code64 ? 8 : (cpu->seg[X86_CS].attr & 0x400) ? 4 : 2;
	unsigned last_mp = 0; /* the last of 66/F2/F3 seen, as X86_MP_* */
	unsigned pfx = 0, imm_kind;
	bool lenfault = false;

	memset(i, 0, sizeof(*i));
	i->base = X86_NOREG;
	i->index = X86_NOREG;

#define NEED(k)                                   \
	do {                                      \
		if (n + (k) > 15) {               \
			lenfault = true;          \
			goto done_len;            \
		}                                 \
		if (n + (k) > avail)              \
			return -EAGAIN;           \
	} while (0)

	/* Prefixes.  A REX counts only when it comes last, right before the
	 * opcode. */
	for (;;) {
		NEED(1);
		uint8_t b = bytes[n];
		switch (b) {
		case 0xf0: pfx |= X86_PFX_LOCK; rex = 0; n++; continue;
		case 0xf2: pfx = (pfx & ~X86_PFX_REP) | X86_PFX_REPNE; last_mp = X86_MP_F2; rex = 0; n++; continue;
		case 0xf3: pfx = (pfx & ~X86_PFX_REPNE) | X86_PFX_REP; last_mp = X86_MP_F3; rex = 0; n++; continue;
		case 0x66: pfx |= X86_PFX_OPSZ; rex = 0; n++; continue;
		case 0x67: pfx |= X86_PFX_ADSZ; rex = 0; n++; continue;
		case 0x26: case 0x2e: case 0x36: case 0x3e:
			if (mode != 8)
				seg = (b >> 3) & 3;
			rex = 0; n++; continue;
		case 0x64: seg = X86_FS; rex = 0; n++; continue;
		case 0x65: seg = X86_GS; rex = 0; n++; continue;
		default: break;
		}
		if (mode == 8 && (b & 0xf0) == 0x40) {
			rex = b;
			n++;
			continue;
		}
		break;
	}
	if (rex) {
		pfx |= X86_PFX_REX;
		if (rex & 8)
			pfx |= X86_PFX_REXW;
	}

	/* Opcode. */
	NEED(1);
	opc = bytes[n++];
	if (opc == 0x0f) {
		NEED(1);
		opc = bytes[n++];
		map = 1;
		if (opc == 0x38 || opc == 0x3a) {
			map = opc == 0x38 ? 2 : 3;
			NEED(1);
			opc = bytes[n++];
		}
	}
	attr = map == 0 ? map1[opc] : map == 1 ? map2[opc] : map == 2 ? M : (M | I_B);
	i->op = (uint16_t)(map << 8 | opc);
	i->rex = (uint8_t)rex;
	i->pfx = (uint8_t)pfx;

	/* Operand and address sizes. */
	if (mode == 8) {
		if ((attr & F64) || (pfx & X86_PFX_REXW))
			i->osz = 8;
		else if (pfx & X86_PFX_OPSZ)
			i->osz = 2;
		else
			i->osz = (attr & D64) ? 8 : 4;
		i->asz = (pfx & X86_PFX_ADSZ) ? 4 : 8;
	} else {
		i->osz = (uint8_t)(((pfx & X86_PFX_OPSZ) ? 6 : 0) ^ mode);
		i->asz = (uint8_t)(((pfx & X86_PFX_ADSZ) ? 6 : 0) ^ mode);
	}
	i->amask = i->asz == 8 ? ~0ull : i->asz == 4 ? 0xffffffffull : 0xffffull;

	/* ModRM, SIB, displacement. */
	if (attr & M) {
		NEED(1);
		unsigned modrm = bytes[n++];
		if (map == 1 && (opc & 0xfc) == 0x20)
			modrm |= 0xc0; /* MOV to/from CRn/DRn: mod is ignored */
		unsigned mod = modrm >> 6, rm = modrm & 7;
		if (map == 1 && (opc & 0xfc) == 0x20)
			mod = 3; /* MOV to/from CRn/DRn: always registers, whatever mod says */
		i->modrm = (uint8_t)modrm;
		i->reg = (uint8_t)(((modrm >> 3) & 7) | ((rex & 4) << 1));
		if (mod == 3) {
			i->rm = (uint8_t)(rm | ((rex & 1) << 3));
		} else if (i->asz == 2) {
			static const uint8_t b16[8] = { X86_RBX, X86_RBX, X86_RBP, X86_RBP, X86_RSI, X86_RDI, X86_RBP, X86_RBX };
			static const uint8_t x16[8] = { X86_RSI, X86_RDI, X86_RSI, X86_RDI, X86_NOREG, X86_NOREG, X86_NOREG, X86_NOREG };
			i->is_mem = 1;
			i->base = b16[rm];
			i->index = x16[rm];
			if (mod == 0 && rm == 6) {
				i->base = X86_NOREG;
				NEED(2);
				i->disp = (uint64_t)(int64_t)(int16_t)fetch_le(bytes + n, 2);
				n += 2;
			} else if (mod == 1) {
				NEED(1);
				i->disp = (uint64_t)(int64_t)(int8_t)bytes[n++];
			} else if (mod == 2) {
				NEED(2);
				i->disp = (uint64_t)(int64_t)(int16_t)fetch_le(bytes + n, 2);
				n += 2;
			}
			if (seg == X86_SEG_NONE)
				seg = (i->base == X86_RBP) ? X86_SS : X86_DS;
		} else {
			bool riprel = false;
			i->is_mem = 1;
			if (rm == 4) {
				NEED(1);
				unsigned sib = bytes[n++];
				unsigned idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
				unsigned base = (sib & 7) | ((rex & 1) << 3);
				i->scale = (uint8_t)(sib >> 6);
				i->index = idx == 4 ? X86_NOREG : (uint8_t)idx;
				if ((sib & 7) == 5 && mod == 0) {
					i->base = X86_NOREG;
					NEED(4);
					i->disp = (uint64_t)(int64_t)(int32_t)fetch_le(bytes + n, 4);
					n += 4;
				} else {
					i->base = (uint8_t)base;
				}
			} else if (rm == 5 && mod == 0) {
				NEED(4);
				i->disp = (uint64_t)(int64_t)(int32_t)fetch_le(bytes + n, 4);
				n += 4;
				riprel = mode == 8;
			} else {
				i->base = (uint8_t)(rm | ((rex & 1) << 3));
			}
			if (mod == 1) {
				NEED(1);
				i->disp = (uint64_t)(int64_t)(int8_t)bytes[n++];
			} else if (mod == 2) {
				NEED(4);
				i->disp = (uint64_t)(int64_t)(int32_t)fetch_le(bytes + n, 4);
				n += 4;
			}
			if (riprel)
				i->aux = 0xff; /* resolved below, once the length is known */
			if (seg == X86_SEG_NONE)
				seg = (i->base == X86_RBP || i->base == X86_RSP) ? X86_SS : X86_DS;
		}
	}
	if (seg == X86_SEG_NONE)
		seg = X86_DS;
	i->seg = (uint8_t)seg;

	/* Immediates. */
	imm_kind = attr & 0x0f;
	if (imm_kind == I_GRP3)
		imm_kind = ((i->modrm >> 3) & 7) < 2 ? (opc == 0xf6 ? I_B : I_Z) : I_NONE;
	switch (imm_kind) {
	case I_B:
		NEED(1);
		i->imm = (uint64_t)(int64_t)(int8_t)bytes[n++];
		break;
	case I_W:
		NEED(2);
		i->imm = fetch_le(bytes + n, 2);
		n += 2;
		break;
	case I_Z:
		if (i->osz == 2) {
			NEED(2);
			i->imm = (uint64_t)(int64_t)(int16_t)fetch_le(bytes + n, 2);
			n += 2;
		} else {
			NEED(4);
			i->imm = (uint64_t)(int64_t)(int32_t)fetch_le(bytes + n, 4);
			n += 4;
		}
		break;
	case I_V:
		NEED(i->osz);
		i->imm = fetch_le(bytes + n, i->osz);
		n += i->osz;
		break;
	case I_WB:
		NEED(3);
		i->imm = fetch_le(bytes + n, 2);
		i->imm2 = bytes[n + 2];
		n += 3;
		break;
	case I_P: {
		unsigned k = i->osz == 2 ? 4 : 6;
		if (mode == 8)
			k = 0; /* invalid anyway; #UD below */
		NEED(k);
		i->imm = fetch_le(bytes + n, k);
		n += k;
		break;
	}
	case I_O:
		NEED(i->asz);
		i->disp = fetch_le(bytes + n, i->asz);
		n += i->asz;
		break;
	default:
		break;
	}

done_len:
	i->len = (uint8_t)n;
	i->next_rip = rip + n;
	if (i->aux == 0xff) {
		i->aux = 0;
		i->disp += i->next_rip;
		if (i->asz == 4)
			i->disp &= 0xffffffffull;
	}
	if (lenfault) {
		i->len = 15;
		i->next_rip = rip + 15;
		i->fn = x86_h_gp0;
		i->flags = X86_IF_END;
		return 0;
	}
	if ((attr & INV64) && mode == 8 && map == 0) {
		i->fn = x86_h_ud;
		i->flags = X86_IF_END;
		return 0;
	}

	/* Handler selection. */
	bool ok;
	if (map == 0 && opc >= 0xd8 && opc <= 0xdf)
		ok = x86_select_x87(i, opc);
	else if (is_sse_opcode(map, opc))
		ok = x86_select_sse(i, map, opc, last_mp);
	else
		ok = x86_select_int(i, map, opc, mode, last_mp) ||
		     x86_select_int2(i, map, opc, last_mp);
	if (!ok || ((pfx & X86_PFX_LOCK) && !(i->flags & X86_IF_LOCKOK)))
		i->fn = x86_h_ud;
	if (i->fn == x86_h_ud || i->fn == x86_h_gp0)
		i->flags |= X86_IF_END;
	return 0;
#undef NEED
}
