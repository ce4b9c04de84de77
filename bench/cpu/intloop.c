/*
 * CPU benchmark: an integer loop (adds, xors, shifts, a compare and a
 * branch per iteration), freestanding so that nothing but the loop runs.
 */
#include <stdint.h>

static void sys_exit(int code)
{
	__asm__ volatile("syscall" : : "a"(231), "D"(code) : "rcx", "r11", "memory");
	__builtin_unreachable();
}

static long sys_write(int fd, const void *buf, unsigned long len)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(1), "D"(fd), "S"(buf), "d"(len) : "rcx", "r11", "memory");
	return r;
}

__attribute__((noinline)) static uint64_t work(uint64_t n)
{
	uint64_t a = 1, b = 2, c = 3;
	for (uint64_t k = 0; k < n; k++) {
		a += b ^ k;
		b = (b << 1) + (c >> 3);
		c ^= a + k;
		__asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c));
	}
	return a ^ b ^ c;
}

void _start(void)
{
	uint64_t r = work(100000000);
	char buf[17];
	for (int k = 15; k >= 0; k--) {
		buf[k] = "0123456789abcdef"[r & 15];
		r >>= 4;
	}
	buf[16] = '\n';
	sys_write(1, buf, 17);
	sys_exit(0);
}
