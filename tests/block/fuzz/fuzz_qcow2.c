/*
 * libFuzzer target: opens arbitrary bytes as a qcow2 image (read-only, no
 * backing file) and exercises the read paths: info, snapshot list, block
 * status, reads of what block status reports, a read-only check, and a
 * read-only view of each snapshot.  Any crash, hang, leak or sanitizer
 * report is a bug; errors are expected and fine.
 *
 * Built by tests/block/fuzz/meson.build when clang is available.  Short run
 * (the suite): see meson.build.  Longer run, by hand:
 *   build-test/tests/block/fuzz/fuzz-qcow2 -max_total_time=3600 -jobs=2 \
 *       -max_len=1048576 /tmp/qcow2-corpus tests/block/fuzz/corpus
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block.h"

static void exercise(struct blk *b)
{
	struct blk_info info;
	blk_get_info(b, &info);
	struct blk_snapshot_info *sn = NULL;
	unsigned nb = 0;
	if (blk_snapshot_list(b, &sn, &nb) == 0)
		free(sn);
	uint64_t size = blk_size(b), off = 0;
	static uint8_t buf[1 << 16];
	for (int i = 0; i < 64 && off < size; i++) {
		struct blk_status st;
		if (blk_block_status(b, off, size - off, true, &st) < 0 || !st.len)
			break;
		uint64_t n = st.len < sizeof(buf) ? st.len : sizeof(buf);
		blk_pread(b, off, buf, n);
		off += st.len;
	}
	if (size > sizeof(buf))
		blk_pread(b, size - sizeof(buf), buf, sizeof(buf));
	struct blk_check_result res;
	blk_check(b, BLK_REPAIR_NONE, NULL, NULL, &res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz.qcow2", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct blk_open_opts o = { .format = BLK_FMT_QCOW2,
				   .flags = BLK_OPEN_NO_BACKING };
	struct blk *b;
	char err[512];
	if (blk_open(path, &o, &b, err, sizeof(err)) == 0) {
		exercise(b);
		struct blk_snapshot_info *sn = NULL;
		unsigned nb = 0;
		if (blk_snapshot_list(b, &sn, &nb) == 0 && nb) {
			for (unsigned i = 0; i < nb && i < 4; i++) {
				struct blk *s;
				o.snapshot = sn[i].id;
				if (blk_open(path, &o, &s, err, sizeof(err)) == 0) {
					exercise(s);
					blk_close(s);
				}
			}
			free(sn);
		}
		blk_close(b);
	}
	close(fd);
	return 0;
}
