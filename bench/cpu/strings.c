/*
 * CPU benchmark: string work through glibc's memcpy, strlen, memchr and
 * strcmp on buffers of mixed sizes.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	static char a[1 << 16], b[1 << 16];
	uint64_t sum = 0;
	uint32_t x = 7;

	for (unsigned k = 0; k < sizeof(a); k++) {
		x = x * 1103515245 + 12345;
		a[k] = (char)('a' + (x >> 16) % 26);
	}
	for (unsigned round = 0; round < 20000; round++) {
		x = x * 1103515245 + 12345;
		unsigned len = 16 + (x >> 8) % 4000, off = (x >> 4) % 1024;
		a[off + len] = 0;
		memcpy(b, a + off, len + 1);
		sum += strlen(b);
		sum += (uintptr_t)memchr(b, 'z', len) != 0;
		sum += (unsigned)strcmp(a + off, b) == 0;
		a[off + len] = 'q';
	}
	printf("%llu\n", (unsigned long long)sum);
	return 0;
}
