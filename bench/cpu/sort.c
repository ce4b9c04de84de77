/* CPU benchmark: sorting integers with a hand-written quicksort plus an
 * insertion sort for small ranges (branchy integer code). */
#include <stdint.h>
#include <stdio.h>

static void isort(uint32_t *v, long n)
{
	for (long i = 1; i < n; i++) {
		uint32_t t = v[i];
		long j = i - 1;
		while (j >= 0 && v[j] > t) {
			v[j + 1] = v[j];
			j--;
		}
		v[j + 1] = t;
	}
}

static void qsort_u32(uint32_t *v, long n)
{
	while (n > 16) {
		uint32_t p = v[n / 2];
		long i = 0, j = n - 1;
		while (i <= j) {
			while (v[i] < p) i++;
			while (v[j] > p) j--;
			if (i <= j) {
				uint32_t t = v[i]; v[i] = v[j]; v[j] = t;
				i++; j--;
			}
		}
		if (j + 1 < n - i) {
			qsort_u32(v, j + 1);
			v += i; n -= i;
		} else {
			qsort_u32(v + i, n - i);
			n = j + 1;
		}
	}
	isort(v, n);
}

int main(void)
{
	enum { N = 1 << 20 };
	static uint32_t v[N];
	uint32_t x = 2463534242u;
	uint64_t h = 0;

	for (long i = 0; i < N; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		v[i] = x;
	}
	qsort_u32(v, N);
	for (long i = 0; i < N; i += 4096)
		h = h * 31 + v[i];
	for (long i = 1; i < N; i++)
		if (v[i - 1] > v[i]) {
			printf("not sorted\n");
			return 1;
		}
	printf("%llu\n", (unsigned long long)h);
	return 0;
}
