#include "core/core.h"
#include "test.h"

#include <errno.h>

int main(void)
{
	uint64_t v = 0;

	CHECK(parse_size("512", 1, &v) == 0 && v == 512);
	CHECK(parse_size("512", 1 << 20, &v) == 0 && v == 512ull << 20);
	CHECK(parse_size("64k", 1, &v) == 0 && v == 65536);
	CHECK(parse_size("2G", 1, &v) == 0 && v == 2ull << 30);
	CHECK(parse_size("1T", 1, &v) == 0 && v == 1ull << 40);
	CHECK(parse_size("7B", 1 << 20, &v) == 0 && v == 7);
	CHECK(parse_size("16E", 1, &v) == -ERANGE);
	CHECK(parse_size("", 1, &v) == -EINVAL);
	CHECK(parse_size("-1", 1, &v) == -EINVAL);
	CHECK(parse_size("12Q", 1, &v) == -EINVAL);
	CHECK(parse_size("12MB", 1, &v) == -EINVAL);
	CHECK(parse_size("99999999999999999999999", 1, &v) == -ERANGE);
	TEST_MAIN_END();
}
