/* CPU benchmark: an SSE2 kernel — single-precision saxpy and a dot product
 * with packed-float intrinsics, plus a packed-integer checksum. */
#include <emmintrin.h>
#include <stdint.h>
#include <stdio.h>

int main(void)
{
	enum { N = 4096 };
	static float x[N] __attribute__((aligned(16))), y[N] __attribute__((aligned(16)));
	__m128i acc = _mm_setzero_si128();
	float dot = 0;

	for (int i = 0; i < N; i++) {
		x[i] = (float)(i % 17) * 0.25f;
		y[i] = (float)(i % 13) * 0.5f;
	}
	for (int round = 0; round < 2000; round++) {
		__m128 a = _mm_set1_ps(1.0001f);
		__m128 s = _mm_setzero_ps();
		for (int i = 0; i < N; i += 4) {
			__m128 vx = _mm_load_ps(x + i), vy = _mm_load_ps(y + i);
			vy = _mm_add_ps(_mm_mul_ps(a, vx), vy);
			_mm_store_ps(y + i, _mm_mul_ps(vy, _mm_set1_ps(0.5f)));
			s = _mm_add_ps(s, _mm_mul_ps(vx, vy));
			acc = _mm_add_epi32(acc, _mm_cvttps_epi32(vy));
		}
		float t[4];
		_mm_storeu_ps(t, s);
		dot += t[0] + t[1] + t[2] + t[3];
	}
	int32_t c[4];
	_mm_storeu_si128((__m128i *)c, acc);
	printf("%.3f %d\n", dot, c[0] ^ c[1] ^ c[2] ^ c[3]);
	return 0;
}
