/*
 * virtio_blk_parse: the --disk syntax, its defaults, and the messages for
 * what it refuses.
 */
#include <errno.h>

#include "test.h"
#include "virtio/virtio.h"

static char err[512];

static int parse(const char *spec, struct virtio_blk_opts *o, char **buf)
{
	err[0] = '\0';
	return virtio_blk_parse(spec, o, buf, err, sizeof(err));
}

/* spec is refused with -EINVAL, a message mentioning what, and no buffer. */
static void check_refused(const char *spec, const char *what)
{
	struct virtio_blk_opts o;
	char *buf = (char *)1;
	int ret = parse(spec, &o, &buf);
	CHECK(ret == -EINVAL);
	CHECK(buf == NULL);
	CHECK(strstr(err, what) != NULL);
	if (!strstr(err, what))
		fprintf(stderr, "  spec '%s': message '%s' lacks '%s'\n", spec, err, what);
}

int main(void)
{
	struct virtio_blk_opts o;
	char *buf;

	/* a bare file name, defaults */
	CHECK(parse("disk.qcow2", &o, &buf) == 0);
	CHECK(!strcmp(o.path, "disk.qcow2"));
	CHECK(o.format == BLK_FMT_AUTO);
	CHECK(!o.read_only);
	CHECK(o.cache == VIRTIO_BLK_CACHE_WRITEBACK);
	CHECK(o.serial == NULL);
	free(buf);

	/* every key */
	CHECK(parse("path=/tmp/a.img,format=raw,readonly=on,cache=none,serial=SER-1", &o,
		    &buf) == 0);
	CHECK(!strcmp(o.path, "/tmp/a.img"));
	CHECK(o.format == BLK_FMT_RAW);
	CHECK(o.read_only);
	CHECK(o.cache == VIRTIO_BLK_CACHE_NONE);
	CHECK(o.serial && !strcmp(o.serial, "SER-1"));
	free(buf);

	/* bare file then options; qcow2; readonly=off; cache=writeback */
	CHECK(parse("x.qcow2,format=qcow2,readonly=off,cache=writeback", &o, &buf) == 0);
	CHECK(!strcmp(o.path, "x.qcow2"));
	CHECK(o.format == BLK_FMT_QCOW2);
	CHECK(!o.read_only);
	CHECK(o.cache == VIRTIO_BLK_CACHE_WRITEBACK);
	free(buf);

	/* boolean synonyms */
	CHECK(parse("a,readonly=yes", &o, &buf) == 0 && o.read_only);
	free(buf);
	CHECK(parse("a,readonly=true", &o, &buf) == 0 && o.read_only);
	free(buf);
	CHECK(parse("a,readonly=0", &o, &buf) == 0 && !o.read_only);
	free(buf);

	/* ",," is a comma inside a value */
	CHECK(parse("path=we,,ird.img,serial=a,,b", &o, &buf) == 0);
	CHECK(!strcmp(o.path, "we,ird.img"));
	CHECK(!strcmp(o.serial, "a,b"));
	free(buf);

	/* '=' inside a value (after the first) is part of it */
	CHECK(parse("path=a=b.img", &o, &buf) == 0);
	CHECK(!strcmp(o.path, "a=b.img"));
	free(buf);

	/* a 20-byte serial is the most */
	CHECK(parse("a,serial=01234567890123456789", &o, &buf) == 0);
	CHECK(strlen(o.serial) == 20);
	free(buf);

	/* the spec string itself is not modified */
	const char spec[] = "p,,q,serial=s";
	CHECK(parse(spec, &o, &buf) == 0);
	CHECK(!strcmp(spec, "p,,q,serial=s"));
	CHECK(!strcmp(o.path, "p,q"));
	free(buf);

	/* refusals, each with a message that says what is wrong */
	check_refused("", "needs a value");
	check_refused("a,foo=1", "unknown key 'foo'");
	check_refused("a,format=vmdk", "unknown format 'vmdk'");
	check_refused("a,readonly=maybe", "not a boolean");
	check_refused("a,readonly=", "not a boolean");
	check_refused("a,cache=directsync", "unknown cache mode 'directsync'");
	check_refused("a,serial=012345678901234567890", "at most 20");
	check_refused("format=raw", "no file");
	check_refused("path=", "no file");
	check_refused("a,b", "not KEY=VALUE");
	check_refused("a,path=b", "given twice");
	check_refused("a,readonly=on,readonly=off", "given twice");
	check_refused("a,", "not KEY=VALUE");

	/* NULL spec */
	buf = (char *)1;
	CHECK(virtio_blk_parse(NULL, &o, &buf, err, sizeof(err)) == -EINVAL);
	CHECK(buf == NULL);
	/* a zero-sized message buffer is fine */
	CHECK(virtio_blk_parse("a,x=y", &o, &buf, NULL, 0) == -EINVAL);

	TEST_MAIN_END();
}
