/*
 * The demo guest program of 'scripts/dev demo': counts primes with a sieve,
 * sorts pseudo-random numbers and hashes the result, then prints what it
 * found.  Built as a static x86-64 program and run on the software CPU.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(void)
{
	enum { N = 1000000, M = 100000 };
	static uint8_t composite[N + 1];
	static uint32_t v[M];
	unsigned primes = 0;
	uint64_t h = 1469598103934665603ull;
	uint32_t x = 12345;

	for (unsigned i = 2; i <= N; i++) {
		if (composite[i])
			continue;
		primes++;
		for (uint64_t j = (uint64_t)i * i; j <= N; j += i)
			composite[j] = 1;
	}
	for (unsigned i = 0; i < M; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		v[i] = x;
	}
	qsort(v, M, sizeof(v[0]), cmp_u32);
	for (unsigned i = 0; i < M; i++)
		h = (h ^ v[i]) * 1099511628211ull;
	printf("hello from the maquina software CPU\n");
	printf("primes below %d: %u\n", N, primes);
	printf("sorted %d numbers, min %u max %u, FNV-1a %016llx\n", M, v[0], v[M - 1],
	       (unsigned long long)h);
	return 0;
}
