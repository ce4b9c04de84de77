#include "core/core.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

int parse_size(const char *s, uint64_t default_unit, uint64_t *out_bytes)
{
	char *end;
	unsigned long long v;
	uint64_t unit = default_unit;
	int shift;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'B': shift = 0; break;
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		case 'T': shift = 40; break;
		case 'P': shift = 50; break;
		case 'E': shift = 60; break;
		default: return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
		unit = 1ull << shift;
	}
	if (unit && v > UINT64_MAX / unit)
		return -ERANGE;
	*out_bytes = v * unit;
	return 0;
}

uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
