/*
 * SSE4.2 string and text instructions (PCMPESTRI, PCMPESTRM, PCMPISTRI,
 * PCMPISTRM), CRC32 (Castagnoli) and MOVBE.
 *
 * The string instructions follow the SDM's description (vol. 2, 4.1 "Imm8
 * control byte operation for PCMPESTRI / PCMPESTRM / PCMPISTRI / PCMPISTRM"):
 * a comparison matrix of the first operand's elements against the second's,
 * forced for invalid elements by the aggregation mode, aggregated into
 * IntRes1, polarity applied to get IntRes2, and the output (an index in ECX
 * or a mask in XMM0) and the flags derived from it.
 */
#include "cpu/x86/sse4_int.h"

#include <emmintrin.h>

/* --- PCMPxSTRx ------------------------------------------------------------ */

/* The comparisons run on the host's SSE2 unit (baseline on x86-64 hosts).
 * Operands are first biased so that one kind of ordered comparison serves
 * each width: bytes compare as unsigned (signed bytes get 0x80 flipped),
 * words as signed (unsigned words get 0x8000 flipped).  Equality does not
 * care about the bias. */
static inline __m128i str_bias(__m128i v, unsigned fmt)
{
	switch (fmt) {
	case 1: return _mm_xor_si128(v, _mm_set1_epi16((short)0x8000));
	case 2: return _mm_xor_si128(v, _mm_set1_epi8((char)0x80));
	default: return v;
	}
}

/* One bit per element of a comparison result (lanes all ones or zeros). */
static inline unsigned str_bits(__m128i v, bool words)
{
	if (words)
		return (unsigned)_mm_movemask_epi8(_mm_packs_epi16(v, _mm_setzero_si128()));
	return (unsigned)_mm_movemask_epi8(v);
}

/* Broadcast of element k of the biased vector t. */
static inline __m128i str_bcast(const x86_xmm *t, unsigned k, bool words)
{
	return words ? _mm_set1_epi16((short)t->w[k]) : _mm_set1_epi8((char)t->b[k]);
}

static inline unsigned str_eq(__m128i x, __m128i y, bool words)
{
	return str_bits(words ? _mm_cmpeq_epi16(x, y) : _mm_cmpeq_epi8(x, y), words);
}

/* Elements of y that are >= lo and <= hi (biased domain). */
static inline unsigned str_range(__m128i y, __m128i lo, __m128i hi, bool words)
{
	__m128i ge, le;
	if (words) {
		ge = _mm_cmpeq_epi16(_mm_max_epi16(y, lo), y);
		le = _mm_cmpeq_epi16(_mm_min_epi16(y, hi), y);
	} else {
		ge = _mm_cmpeq_epi8(_mm_max_epu8(y, lo), y);
		le = _mm_cmpeq_epi8(_mm_min_epu8(y, hi), y);
	}
	return str_bits(_mm_and_si128(ge, le), words);
}

/* Implicit length: the index of the first zero element, or n. */
static inline unsigned str_ilen(const x86_xmm *v, unsigned n, bool words)
{
	__m128i x = _mm_loadu_si128((const __m128i *)v);
	unsigned z = str_eq(x, _mm_setzero_si128(), words);
	return z ? (unsigned)__builtin_ctz(z) : n;
}

/* Explicit length: the absolute value of a signed 32- or 64-bit register,
 * saturated to n. */
static inline unsigned str_elen(uint64_t r, bool wide, unsigned n)
{
	uint64_t m;
	if (wide)
		m = (int64_t)r < 0 ? -r : r;
	else
		m = (int32_t)r < 0 ? (uint32_t)-(uint32_t)r : (uint32_t)r;
	return m > n ? n : (unsigned)m;
}

/* Computes IntRes2 for operands a (xmm1, valid length la) and b (xmm2/m128,
 * valid length lb) under control byte imm.  Bit j of IntRes1 is, by the
 * aggregation imm[3:2]:
 *   equal any:     b[j] is one of a[0..la)
 *   ranges:        b[j] lies in some [a[2k], a[2k+1]] with 2k+1 < la
 *   equal each:    a[j] == b[j], where an invalid element equals only an
 *                  invalid one
 *   equal ordered: a[0..la) occurs in b at j (a may run past b's end only
 *                  past n, where it is not compared)
 * and never set for j >= lb except in the last two.  Polarity imm[5:4]
 * then inverts all n bits (01) or those below lb (11). */
static unsigned str_compare(const x86_xmm *a, const x86_xmm *b, unsigned la,
			    unsigned lb, unsigned imm)
{
	unsigned fmt = imm & 3, n = (imm & 1) ? 8 : 16;
	bool words = imm & 1;
	unsigned nmask = (1u << n) - 1, lamask = (1u << la) - 1, lbmask = (1u << lb) - 1;
	unsigned res = 0;
	__m128i va = str_bias(_mm_loadu_si128((const __m128i *)a), fmt);
	__m128i vb = str_bias(_mm_loadu_si128((const __m128i *)b), fmt);
	x86_xmm ta;

	_mm_storeu_si128((__m128i *)&ta, va);
	switch ((imm >> 2) & 3) {
	case 0:
		for (unsigned k = 0; k < la; k++)
			res |= str_eq(str_bcast(&ta, k, words), vb, words);
		res &= lbmask;
		break;
	case 1:
		for (unsigned k = 0; k + 1 < la; k += 2)
			res |= str_range(vb, str_bcast(&ta, k, words),
					 str_bcast(&ta, k + 1, words), words);
		res &= lbmask;
		break;
	case 2:
		res = (str_eq(va, vb, words) & lamask & lbmask) | (~lamask & ~lbmask);
		break;
	default:
		res = nmask;
		for (unsigned k = 0; k < la; k++)
			res &= ((str_eq(str_bcast(&ta, k, words), vb, words) & lbmask) >> k) |
			       ~((1u << (n - k)) - 1);
		break;
	}
	switch ((imm >> 4) & 3) {
	case 1: res ^= nmask; break;
	case 3: res ^= lbmask; break;
	default: break;
	}
	return res & nmask;
}

/* Flags of all four: CF = IntRes2 != 0, ZF = b shorter than n, SF = a
 * shorter than n, OF = IntRes2[0]; AF and PF cleared. */
static inline void str_flags(struct x86_cpu *cpu, unsigned res, unsigned la,
			     unsigned lb, unsigned n)
{
	x86_set_arith_flags(cpu, (res ? X86_CF : 0) | (lb < n ? X86_ZF : 0) |
				 (la < n ? X86_SF : 0) | ((res & 1) ? X86_OF : 0));
}

/* xSTRI: the index of the least (imm[6] clear) or most significant set bit
 * of IntRes2 in ECX, or n when none is set. */
static inline void str_index(struct x86_cpu *cpu, unsigned res, unsigned imm, unsigned n)
{
	unsigned idx = n;
	if (res)
		idx = (imm & 0x40) ? 31u - (unsigned)__builtin_clz(res) : (unsigned)__builtin_ctz(res);
	cpu->regs[X86_RCX] = idx;
}

/* xSTRM: IntRes2 in XMM0, as bits (imm[6] clear) or expanded to elements. */
static inline void str_mask(struct x86_cpu *cpu, unsigned res, unsigned imm)
{
	x86_xmm m = { .q = { 0, 0 } };
	if (!(imm & 0x40)) {
		m.q[0] = res;
	} else if (imm & 1) {
		for (unsigned k = 0; k < 8; k++)
			m.w[k] = (res >> k & 1) ? 0xffff : 0;
	} else {
		for (unsigned k = 0; k < 16; k++)
			m.b[k] = (res >> k & 1) ? 0xff : 0;
	}
	cpu->xmm[0] = m;
}

/* One of the four instructions: explicit lengths (RAX/EAX and RDX/EDX) or
 * implicit (NUL-terminated); mask or index output. */
static inline __attribute__((always_inline)) void
pcmpstr(struct x86_cpu *cpu, const struct x86_insn *i, const x86_xmm *b, bool expl, bool mask)
{
	const x86_xmm *a = &cpu->xmm[i->reg];
	unsigned imm = (uint8_t)i->imm, n = (imm & 1) ? 8 : 16, la, lb;
	if (expl) {
		bool wide = i->pfx & X86_PFX_REXW;
		la = str_elen(cpu->regs[X86_RAX], wide, n);
		lb = str_elen(cpu->regs[X86_RDX], wide, n);
	} else {
		la = str_ilen(a, n, imm & 1);
		lb = str_ilen(b, n, imm & 1);
	}
	unsigned res = str_compare(a, b, la, lb, imm);
	if (mask)
		str_mask(cpu, res, imm);
	else
		str_index(cpu, res, imm, n);
	str_flags(cpu, res, la, lb, n);
}

#define DEF_PCMPSTR(name, expl, mask)                                           \
	static X86_HANDLER(h_##name##_r)                                        \
	{                                                                       \
		x86_sse4_gate(cpu);                                             \
		x86_xmm b = cpu->xmm[i->rm]; /* the mask form may write XMM0 */  \
		pcmpstr(cpu, i, &b, expl, mask);                                \
		return i + 1;                                                   \
	}                                                                       \
	static X86_HANDLER(h_##name##_m)                                        \
	{                                                                       \
		x86_xmm b;                                                      \
		x86_sse4_gate(cpu);                                             \
		x86_read128(cpu, x86_ea(cpu, i), &b, false); /* no alignment check */ \
		pcmpstr(cpu, i, &b, expl, mask);                                \
		return i + 1;                                                   \
	}
DEF_PCMPSTR(pcmpestrm, true, true)
DEF_PCMPSTR(pcmpestri, true, false)
DEF_PCMPSTR(pcmpistrm, false, true)
DEF_PCMPSTR(pcmpistri, false, false)

/* --- CRC32 ------------------------------------------------------------------ */

/* CRC-32C (polynomial 0x1EDC6F41, bit-reflected 0x82F63B78), one byte per
 * step: table[b] is the CRC of byte b with an all-zero register. */
static const uint32_t crc32c_table[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8, 0xd4ca64eb,
	0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24,
	0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
	0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b,
	0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35,
	0xaa64d611, 0x580f5512, 0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
	0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
	0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595,
	0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
	0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f, 0xed03a29b, 0x1f682198,
	0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927, 0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38,
	0xdbfc821c, 0x2997011f, 0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
	0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789,
	0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
	0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
	0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de, 0xdde0eb2a, 0x2f8b6829,
	0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93,
	0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
	0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc,
	0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033,
	0xa24bb5a6, 0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81, 0xfc588982,
	0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622,
	0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
	0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f,
	0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0,
	0xd3d3e1ab, 0x21b862a8, 0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
	0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
	0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1,
	0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
	0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69, 0xd5cf889d, 0x27a40b9e,
	0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e, 0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

/* The CRC32 instruction's update: crc of size bytes of v (little-endian
 * order), with no pre- or post-inversion. */
static inline uint32_t crc32c_update(uint32_t crc, uint64_t v, unsigned size)
{
	for (unsigned k = 0; k < size; k++, v >>= 8)
		crc = (crc >> 8) ^ crc32c_table[(crc ^ v) & 0xff];
	return crc;
}

/* aux: source size in bytes; the destination is r32 (or r64 with REX.W),
 * always written zero-extended. */
static X86_HANDLER(h_crc32_r)
{
	uint64_t v = x86_get_reg(cpu, i->rm, i->aux);
	cpu->regs[i->reg] = crc32c_update((uint32_t)cpu->regs[i->reg], v, i->aux);
	return i + 1;
}

static X86_HANDLER(h_crc32_m)
{
	uint64_t v = x86_read(cpu, x86_ea(cpu, i), i->aux);
	cpu->regs[i->reg] = crc32c_update((uint32_t)cpu->regs[i->reg], v, i->aux);
	return i + 1;
}

/* Fast path for the 64-bit source when the host has SSE4.2: its own CRC32
 * instruction computes the same function. */
__attribute__((target("sse4.2"))) static X86_HANDLER(h_crc32q_host_r)
{
	cpu->regs[i->reg] = (uint32_t)__builtin_ia32_crc32di((uint32_t)cpu->regs[i->reg],
							     cpu->regs[i->rm]);
	return i + 1;
}

__attribute__((target("sse4.2"))) static X86_HANDLER(h_crc32q_host_m)
{
	uint64_t v = x86_read64(cpu, x86_ea(cpu, i));
	cpu->regs[i->reg] = (uint32_t)__builtin_ia32_crc32di((uint32_t)cpu->regs[i->reg], v);
	return i + 1;
}

/* --- MOVBE ------------------------------------------------------------------- */

static inline uint64_t bswap_n(uint64_t v, unsigned size)
{
	switch (size) {
	case 2: return __builtin_bswap16((uint16_t)v);
	case 4: return __builtin_bswap32((uint32_t)v);
	default: return __builtin_bswap64(v);
	}
}

static X86_HANDLER(h_movbe_load)
{
	uint64_t v = x86_read(cpu, x86_ea(cpu, i), i->osz);
	x86_set_reg(cpu, i->reg, i->osz, bswap_n(v, i->osz));
	return i + 1;
}

static X86_HANDLER(h_movbe_store)
{
	x86_write(cpu, x86_ea(cpu, i), i->osz, bswap_n(x86_get_reg(cpu, i->reg, i->osz), i->osz));
	return i + 1;
}

/* --- selection ------------------------------------------------------------------ */

bool x86_sse4_select_str(struct x86_insn *i, unsigned map, unsigned opc, unsigned mp)
{
	if (map == 3 && opc >= 0x60 && opc <= 0x63) {
		if (mp != X86_MP_66)
			return false;
		static const x86_handler_fn r[4] = { h_pcmpestrm_r, h_pcmpestri_r, h_pcmpistrm_r, h_pcmpistri_r };
		static const x86_handler_fn m[4] = { h_pcmpestrm_m, h_pcmpestri_m, h_pcmpistrm_m, h_pcmpistri_m };
		i->fn = (i->is_mem ? m : r)[opc - 0x60];
		return true;
	}
	if (map != 2 || (opc != 0xf0 && opc != 0xf1))
		return false;
	if (mp == X86_MP_F2) { /* CRC32 */
		if (opc == 0xf0) {
			i->aux = 1;
			x86_fix_r8_rm(i);
		} else {
			i->aux = i->osz; /* 2, 4 or 8: 66 and REX.W as for any operand */
		}
		i->fn = i->is_mem ? h_crc32_m : h_crc32_r;
		if (i->aux == 8 && __builtin_cpu_supports("sse4.2"))
			i->fn = i->is_mem ? h_crc32q_host_m : h_crc32q_host_r;
		return true;
	}
	if (mp == X86_MP_F3 || !i->is_mem)
		return false;
	/* MOVBE: osz is already 2, 4 or 8 from 66 / REX.W. */
	i->fn = opc == 0xf0 ? h_movbe_load : h_movbe_store;
	return true;
}
