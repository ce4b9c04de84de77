/*
 * A minimal test harness for Meson's test runner: each test program runs
 * its checks, prints each failure with file and line, and exits non-zero
 * if any failed.
 */
#ifndef MAQUINA_TEST_H
#define MAQUINA_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                           \
	do {                                                                  \
		test_checks++;                                                \
		if (!(cond)) {                                                \
			test_failures++;                                      \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                             \
		}                                                             \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                     \
	do {                                                                   \
		uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);               \
		test_checks++;                                                 \
		if (a_ != b_) {                                                \
			test_failures++;                                       \
			fprintf(stderr,                                        \
				"%s:%d: %s == %s failed: 0x%" PRIx64            \
				" != 0x%" PRIx64 "\n",                          \
				__FILE__, __LINE__, #a, #b, a_, b_);           \
		}                                                              \
	} while (0)

#define TEST_MAIN_END()                                                       \
	do {                                                                  \
		printf("%d checks, %d failed\n", test_checks, test_failures); \
		return test_failures ? 1 : 0;                                 \
	} while (0)

#endif
