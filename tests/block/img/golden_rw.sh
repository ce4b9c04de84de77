#!/bin/bash
# Golden-output tests of the commands that change images: each runs on two
# copies of the same files, qemu-img on one and 'maquina img' on the other;
# stdout, stderr and exit codes must match after the normalisation of
# lib.sh, and the resulting images must hold the same data, pass qemu-img
# check and give the same qemu-img info.
. "$(dirname "$0")/lib.sh" "$1"
make_images

# ---- commands that change images: run on two copies ----
mk_none() { :; }
mk_data() { cp ../data.qcow2 ../data.raw ../snap.qcow2 ../plain.qcow2 ../raw.img ../small.qcow2 .; }
mk_chain() {
	q create -q -f qcow2 base.qcow2 16M
	"$QEMU_IO" -f qcow2 -c 'write -P 1 0 2M' -c 'write -P 9 8M 1M' base.qcow2
	q create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
	"$QEMU_IO" -f qcow2 -c 'write -P 2 1M 2M' -c 'write -z 8M 512k' mid.qcow2
	q create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
	"$QEMU_IO" -f qcow2 -c 'write -P 3 1536k 64k' -c 'write -P 4 12M 4k' top.qcow2
	q create -q -f qcow2 other.qcow2 16M
	"$QEMU_IO" -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 5 4M 1M' other.qcow2
}

for o in "" "-o compat=0.10" "-o compat=1.1" "-o cluster_size=4k" "-o cluster_size=512" \
	 "-o cluster_size=2M" "-o lazy_refcounts=on" "-o compression_type=zstd" \
	 "-o extended_l2=on" "-o extended_l2=on,cluster_size=128k" "-o refcount_bits=64" \
	 "-o refcount_bits=1" "-o refcount_bits=8,compat=v3" "-o preallocation=metadata" \
	 "-o preallocation=falloc" "-o preallocation=full" "-o cluster_size=3k" \
	 "-o compat=0.10,compression_type=zstd" "-o extended_l2=on,cluster_size=4k" \
	 "-o preallocation=bad" "-o compat=0.9" "-o refcount_bits=3" \
	 "-o compat=0.10,lazy_refcounts=on" "-o compat=0.10,refcount_bits=8" \
	 "-o size=2M"; do
	pair mk_none create -f qcow2 $o x.qcow2 4M
	[ -f qd/x.qcow2 ] && same_image x.qcow2
done
pair mk_none create -f qcow2 -o size=2M x.qcow2
same_image x.qcow2
pair mk_none create -f qcow2 -q x.qcow2 1000
same_image x.qcow2
pair mk_none create -f qcow2 x.qcow2 1.5M
same_image x.qcow2
pair mk_none create -f raw x.raw 1M
same_image x.raw raw
pair mk_none create x.raw 3M
same_image x.raw raw
pair mk_none create -f raw -o preallocation=full x.raw 1M
same_image x.raw raw
pair mk_none create -f raw -o preallocation=metadata x.raw 1M
pair mk_data create -f qcow2 -b data.qcow2 -F qcow2 x.qcow2
same_image x.qcow2
pair mk_data create -f qcow2 -b data.qcow2 -F qcow2 x.qcow2 128M
same_image x.qcow2
pair mk_data create -f qcow2 -o backing_file=data.raw,backing_fmt=raw x.qcow2
same_image x.qcow2
pair mk_none create -f qcow2 -u -b nonexistent -F qcow2 x.qcow2 1M
pair mk_data create -f raw -b data.qcow2 -F qcow2 x.raw 1M

pair mk_data resize data.qcow2 +10M
same_image data.qcow2
pair mk_data resize data.qcow2 -5M
pair mk_data resize --shrink data.qcow2 -- -5M
same_image data.qcow2
pair mk_data resize --shrink data.qcow2 32M
same_image data.qcow2
pair mk_data resize -q data.qcow2 1G
same_image data.qcow2
pair mk_data resize -f raw data.raw 100M
same_image data.raw raw
pair mk_data resize -f raw --shrink data.raw 1M
same_image data.raw raw
pair mk_data resize --preallocation=full -f raw raw.img 9M
same_image raw.img raw

pair mk_data snapshot -c s1 data.qcow2
same_image data.qcow2
pair mk_data snapshot -a first snap.qcow2
same_image snap.qcow2
pair mk_data snapshot -a 2 snap.qcow2
same_image snap.qcow2
pair mk_data snapshot -d first snap.qcow2
same_image snap.qcow2
pair mk_data snapshot -d 1 snap.qcow2
pair mk_data snapshot -c x plain.qcow2
same_image plain.qcow2

pair mk_chain commit top.qcow2
same_image mid.qcow2
same_image top.qcow2
pair mk_chain commit -d top.qcow2
same_image mid.qcow2
same_image top.qcow2
pair mk_chain commit -b base.qcow2 top.qcow2
same_image base.qcow2
same_image top.qcow2
pair mk_chain commit base.qcow2
pair mk_chain commit -b nosuch top.qcow2

pair mk_chain rebase -u -b other.qcow2 -F qcow2 top.qcow2
same_image top.qcow2
pair mk_chain rebase -b other.qcow2 -F qcow2 top.qcow2
same_image top.qcow2
pair mk_chain rebase -b base.qcow2 -F qcow2 top.qcow2
same_image top.qcow2
pair mk_chain rebase -b "" top.qcow2
same_image top.qcow2
pair mk_chain rebase -b other.qcow2 top.qcow2
pair mk_chain rebase top.qcow2
pair mk_chain rebase -b nosuch.qcow2 -F qcow2 top.qcow2

pair mk_data amend -o compat=0.10 data.qcow2
same_image data.qcow2
pair mk_data amend -o lazy_refcounts=on data.qcow2
same_image data.qcow2
pair mk_data amend -o foo=bar data.qcow2

mk_bad() { cp ../leak.qcow2 ../corrupt.qcow2 ../dirty.qcow2 .; }
# repairs: stdout and exit codes compared; the report lines on stderr are
# the block layer's own (qemu-img also lists each leak before repairing it)
IGNORE_STDERR=1 pair mk_bad check -r leaks leak.qcow2
same_image leak.qcow2
IGNORE_STDERR=1 pair mk_bad check -r all leak.qcow2
same_image leak.qcow2
IGNORE_STDERR=1 pair mk_bad check -r all --output=json leak.qcow2
# a corruption: qemu-img rebuilds the whole refcount structure (so its image
# end offset differs); both must end clean with the same data
PAIR_NODIFF=1 pair mk_bad check -r all corrupt.qcow2
NB_CASES=$((NB_CASES + 1))
[ "$(cat q.rc) $(cat m.rc)" = "0 0" ] || fail "check -r all corrupt.qcow2: rc $(cat q.rc) $(cat m.rc)"
same_image corrupt.qcow2
pair mk_bad check -r all dirty.qcow2
same_image dirty.qcow2

pair mk_data convert -O raw data.qcow2 out.raw
same_image out.raw raw
pair mk_data convert -O qcow2 data.raw out.qcow2
same_image out.qcow2
pair mk_data convert -O qcow2 data.qcow2 out.qcow2
same_image out.qcow2
pair mk_data convert -O qcow2 -o cluster_size=4k,compat=0.10 data.qcow2 out.qcow2
same_image out.qcow2
pair mk_data convert -p -O raw data.qcow2 out.raw
same_image out.raw raw
pair mk_data convert -W -m 4 -O qcow2 data.qcow2 out.qcow2
same_image out.qcow2
pair mk_data convert -S 0 -O raw data.qcow2 out.raw
same_image out.raw raw
pair mk_data convert -O qcow2 -B data.raw -F raw data.qcow2 out.qcow2
same_image out.qcow2
pair mk_data convert -O qcow2 -l first snap.qcow2 out.qcow2
same_image out.qcow2
pair mk_data convert -O raw data.qcow2 small.qcow2 out.raw
same_image out.raw raw
pair mk_data convert -n -O qcow2 data.raw plain.qcow2
same_image plain.qcow2
pair mk_data convert -n -O qcow2 data.raw nonexistent.qcow2
pair mk_data convert -c -O raw data.qcow2 out.raw
pair mk_data dd if=data.qcow2 of=out.raw bs=64k count=10
same_image out.raw raw
pair mk_data dd -O qcow2 if=data.qcow2 of=out.qcow2 bs=1M skip=1
same_image out.qcow2
pair mk_data dd if=data.qcow2 of=out.raw bs=4k count=100 skip=50
same_image out.raw raw
pair mk_data dd if=data.qcow2 of=out.raw

# compressed output is compared by content only: the compressed streams of
# zlib builds need not be byte-identical
for o in "" "-o compression_type=zstd" "-o cluster_size=4k" "-o compat=0.10"; do
	pair mk_data convert -c -O qcow2 $o data.qcow2 out.qcow2
	NB_CASES=$((NB_CASES + 1))
	q compare qd/out.qcow2 md/out.qcow2 >/dev/null || fail "convert -c $o: content"
	q check md/out.qcow2 >/dev/null || fail "convert -c $o: qemu-img check"
done

# bench: the first line (the time differs)
for a in "-c 100" "-w -c 100 -s 4k -S 8k" "-c 100 -d 4 -o 4096 --pattern=5 -w --flush-interval=10" "-c 100 -t none -s 64k"; do
	PAIR_NODIFF=1 pair mk_data bench $a data.qcow2
	NB_CASES=$((NB_CASES + 1))
	if [ "$(head -n -1 q.out)" != "$(head -n -1 m.out)" ] || [ "$(cat m.rc)" != 0 ] ||
	   ! grep -q '^Run completed in [0-9.]* seconds.$' m.out; then
		fail "bench $a: $(cat m.out m.err)"
	fi
done

finish
