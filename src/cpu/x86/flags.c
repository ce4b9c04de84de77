/*
 * Lazy arithmetic flags: materialisation from (cc_op, cc_dst, cc_src,
 * cc_src2) and condition-code evaluation.
 */
#include "cpu/x86/handlers.h"

static inline uint32_t parity(uint64_t v)
{
	return __builtin_parity((unsigned)(v & 0xff)) ? 0 : X86_PF;
}

#define SIGN(v, bits) (((v) >> ((bits) - 1)) & 1)

/* Computes the six flags for one producer at one width. */
static uint32_t compute(unsigned op, unsigned bits, uint64_t dst, uint64_t src, uint64_t src2)
{
	uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
	uint64_t a;
	uint32_t f = 0;

	dst &= mask;
	switch (op) {
	case CC_ADD:
		src &= mask;
		a = (dst - src) & mask;
		f |= dst < src ? X86_CF : 0;
		f |= SIGN((a ^ ~src) & (a ^ dst), bits) ? X86_OF : 0;
		f |= (a ^ src ^ dst) & 0x10;
		break;
	case CC_ADC:
		src &= mask;
		a = (dst - src - src2) & mask;
		f |= (src2 ? dst <= src : dst < src) ? X86_CF : 0;
		f |= SIGN((a ^ ~src) & (a ^ dst), bits) ? X86_OF : 0;
		f |= (a ^ src ^ dst) & 0x10;
		break;
	case CC_SUB:
		src &= mask;
		a = (dst + src) & mask;
		f |= a < src ? X86_CF : 0;
		f |= SIGN((a ^ src) & (a ^ dst), bits) ? X86_OF : 0;
		f |= (a ^ src ^ dst) & 0x10;
		break;
	case CC_SBB:
		src &= mask;
		a = (dst + src + src2) & mask;
		f |= (src2 ? a <= src : a < src) ? X86_CF : 0;
		f |= SIGN((a ^ src) & (a ^ dst), bits) ? X86_OF : 0;
		f |= (a ^ src ^ dst) & 0x10;
		break;
	case CC_LOGIC:
		break;
	case CC_INC:
		f |= src2 ? X86_CF : 0;
		f |= dst == (1ull << (bits - 1)) ? X86_OF : 0;
		f |= (dst & 0xf) == 0 ? X86_AF : 0;
		break;
	case CC_DEC:
		f |= src2 ? X86_CF : 0;
		f |= dst == (1ull << (bits - 1)) - 1 ? X86_OF : 0;
		f |= (dst & 0xf) == 0xf ? X86_AF : 0;
		break;
	case CC_SHL:
		f |= SIGN(src, bits) ? X86_CF : 0;
		f |= (SIGN(src, bits) ^ SIGN(dst, bits)) ? X86_OF : 0;
		break;
	case CC_SHR:
		f |= (src & 1) ? X86_CF : 0;
		f |= SIGN(src2, bits) ? X86_OF : 0; /* src2: the original value */
		break;
	case CC_SAR:
		f |= (src & 1) ? X86_CF : 0;
		break;
	case CC_MUL:
		f |= src ? (X86_CF | X86_OF) : 0;
		break;
	default:
		break;
	}
	f |= dst == 0 ? X86_ZF : 0;
	f |= SIGN(dst, bits) ? X86_SF : 0;
	f |= parity(dst);
	return f;
}

uint32_t x86_arith_flags(const struct x86_cpu *cpu)
{
	unsigned op = cpu->cc_op & ~3u, bits = 8u << (cpu->cc_op & 3);

	if (op == CC_EFLAGS)
		return (uint32_t)cpu->cc_src & X86_ARITH_FLAGS;
	return compute(op, bits, cpu->cc_dst, cpu->cc_src, cpu->cc_src2);
}

unsigned x86_cf(const struct x86_cpu *cpu)
{
	unsigned bits = 8u << (cpu->cc_op & 3);
	uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
	uint64_t dst = cpu->cc_dst & mask, src = cpu->cc_src & mask;

	switch (cpu->cc_op & ~3u) {
	case CC_EFLAGS: return cpu->cc_src & X86_CF;
	case CC_ADD: return dst < src;
	case CC_SUB: return ((dst + src) & mask) < src;
	case CC_LOGIC: return 0;
	case CC_INC:
	case CC_DEC: return cpu->cc_src2 != 0;
	default: return x86_arith_flags(cpu) & X86_CF;
	}
}

/* Condition from a full flags value. */
static bool cond_from_flags(uint32_t f, unsigned cc)
{
	bool r;

	switch (cc >> 1) {
	case 0: r = f & X86_OF; break;
	case 1: r = f & X86_CF; break;
	case 2: r = f & X86_ZF; break;
	case 3: r = f & (X86_CF | X86_ZF); break;
	case 4: r = f & X86_SF; break;
	case 5: r = f & X86_PF; break;
	case 6: r = !(f & X86_SF) != !(f & X86_OF); break;
	default: r = (f & X86_ZF) || (!(f & X86_SF) != !(f & X86_OF)); break;
	}
	return r ^ (cc & 1);
}

bool x86_cond_slow(const struct x86_cpu *cpu, unsigned cc)
{
	unsigned op = cpu->cc_op & ~3u, lg = cpu->cc_op & 3;
	bool r;

	if (op == CC_INC || op == CC_DEC || op == CC_ADD) {
		unsigned sh = 64 - (8u << lg);
		int64_t dst = (int64_t)(cpu->cc_dst << sh);
		switch (cc >> 1) {
		case 2: r = dst == 0; break;
		case 4: r = dst < 0; break;
		default: return cond_from_flags(x86_arith_flags(cpu), cc);
		}
		return r ^ (cc & 1);
	}
	return cond_from_flags(x86_arith_flags(cpu), cc);
}
