#!/bin/bash
# Round trips between 'maquina img' and qemu-img: images that maquina
# creates, converts, snapshots, resizes, commits and rebases pass
# 'qemu-img check' and read back byte-identical through 'qemu-img convert';
# images qemu-img makes with each option read back byte-identical through
# 'maquina img convert' and pass 'maquina img check'.
. "$(dirname "$0")/lib.sh" "$1"

# expect DESCRIPTION COMMAND...: the command must succeed
expect() {
	local what=$1
	shift
	NB_CASES=$((NB_CASES + 1))
	if ! "$@" >cmd.out 2>&1; then
		fail "$what: $* -> $(head -c 600 cmd.out)"
		return 1
	fi
}
# same_bytes DESCRIPTION A B
same_bytes() {
	NB_CASES=$((NB_CASES + 1))
	cmp -s "$2" "$3" || fail "$1: $2 and $3 differ: $(cmp "$2" "$3" 2>&1 | head -1)"
}

# 24 MiB of realistic content: random data, zero runs, a repeated block,
# writes that are not cluster-aligned, the last byte set
truncate -s 24M src.raw
dd if=/dev/urandom of=src.raw bs=64k count=16 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=4k seek=600 count=3 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=512 seek=9001 count=1 conv=notrunc status=none
head -c 65536 /dev/urandom >blk.bin
for i in 0 1 2 3 4 5 6 7; do
	dd if=blk.bin of=src.raw bs=64k seek=$((160 + i * 3)) conv=notrunc status=none
done
yes maquina | head -c 3M | dd of=src.raw bs=1M seek=12 conv=notrunc status=none
printf '\x7f' | dd of=src.raw bs=1 seek=$((24 * 1048576 - 1)) conv=notrunc status=none

# ---- maquina writes, qemu-img reads ----
for o in "" "-o compat=0.10" "-o cluster_size=512" "-o cluster_size=4k" "-o cluster_size=2M" \
	 "-o extended_l2=on" "-o lazy_refcounts=on" "-o refcount_bits=1" "-o refcount_bits=64" \
	 "-o compression_type=zstd" "-c" "-c -o compression_type=zstd" "-c -o cluster_size=4k" \
	 "-o preallocation=metadata" "-o preallocation=full"; do
	rm -f m.qcow2 back.raw
	expect "maquina convert $o" m convert -O qcow2 $o src.raw m.qcow2 || continue
	expect "qemu-img check after maquina convert $o" q check m.qcow2
	expect "qemu-img convert of maquina's $o" q convert -O raw m.qcow2 back.raw &&
		same_bytes "maquina convert $o" src.raw back.raw
	expect "maquina check of its own $o" m check m.qcow2
done

# create + snapshot + resize + writes through convert -n, by maquina
rm -f m.qcow2
expect "create" m create -q -f qcow2 m.qcow2 24M
expect "convert -n" m convert -n -O qcow2 src.raw m.qcow2
expect "snapshot -c" m snapshot -c before m.qcow2
expect "resize" m resize -q m.qcow2 +8M
head -c 4M /dev/urandom >new.raw
expect "overwrite with convert -n" m convert -n -f raw -O qcow2 new.raw m.qcow2
expect "qemu-img check after snapshot/resize/rewrite" q check m.qcow2
cp src.raw want.raw
dd if=new.raw of=want.raw conv=notrunc status=none
truncate -s 32M want.raw
expect "qemu-img reads the current state" q convert -O raw m.qcow2 back.raw &&
	same_bytes "current state" want.raw back.raw
cp src.raw want_snap.raw
truncate -s 32M want_snap.raw
expect "qemu-img reads the snapshot" q convert -O raw -l before m.qcow2 back.raw &&
	same_bytes "snapshot" want_snap.raw back.raw
expect "snapshot -a" m snapshot -a before m.qcow2
expect "qemu-img check after apply" q check m.qcow2
expect "qemu-img reads the applied snapshot" q convert -O raw m.qcow2 back.raw &&
	same_bytes "applied snapshot" src.raw back.raw
expect "snapshot -d" m snapshot -d before m.qcow2
expect "qemu-img check after delete" q check m.qcow2
expect "shrink" m resize -q --shrink m.qcow2 16M
expect "qemu-img check after shrink" q check m.qcow2
head -c 16M src.raw >want16.raw
expect "qemu-img reads the shrunk image" q convert -O raw m.qcow2 back.raw &&
	same_bytes "shrunk" want16.raw back.raw

# commit and rebase by maquina on a chain qemu-img made
rm -f base.qcow2 top.qcow2
q create -q -f qcow2 base.qcow2 24M
expect "base content" m convert -n -O qcow2 src.raw base.qcow2
q create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
"$QEMU_IO" -f qcow2 -c 'write -P 0x5a 1M 3M' -c 'write -z 12M 1M' -c 'write -P 1 100k 3k' top.qcow2 >/dev/null
expect "qemu-img reads the chain" q convert -O raw top.qcow2 chain.raw
expect "maquina reads the chain" m convert -O raw top.qcow2 mchain.raw &&
	same_bytes "chain read" chain.raw mchain.raw
cp top.qcow2 top_keep.qcow2
cp base.qcow2 base_keep.qcow2
expect "maquina rebase -b '' (flatten)" m rebase -b "" top.qcow2
expect "qemu-img check after rebase" q check top.qcow2
expect "qemu-img reads the flattened image" q convert -O raw top.qcow2 back.raw &&
	same_bytes "rebase flatten" chain.raw back.raw
cp top_keep.qcow2 top.qcow2
q create -q -f qcow2 newbase.qcow2 24M
"$QEMU_IO" -f qcow2 -c 'write -P 0x77 0 8M' newbase.qcow2 >/dev/null
expect "maquina rebase onto another base" m rebase -b newbase.qcow2 -F qcow2 top.qcow2
expect "qemu-img check after rebase" q check top.qcow2
expect "qemu-img reads the rebased image" q convert -O raw top.qcow2 back.raw &&
	same_bytes "rebase" chain.raw back.raw
cp top_keep.qcow2 top.qcow2
expect "maquina commit" m commit -q top.qcow2
expect "qemu-img check base after commit" q check base.qcow2
expect "qemu-img check top after commit" q check top.qcow2
expect "qemu-img reads the committed base" q convert -O raw base.qcow2 back.raw &&
	same_bytes "commit" chain.raw back.raw
expect "qemu-img reads the emptied top" q convert -O raw top.qcow2 back.raw &&
	same_bytes "commit top" chain.raw back.raw
expect "amend to compat 0.10" m amend -o compat=0.10 base.qcow2
expect "qemu-img check after amend" q check base.qcow2
expect "qemu-img reads the amended image" q convert -O raw base.qcow2 back.raw &&
	same_bytes "amend" chain.raw back.raw

# clusters of the target larger than the source's: a partly written target
# cluster must take the rest of its data from the target's backing chain
rm -f cb_*.qcow2
q create -q -f qcow2 cb_base.qcow2 8M
"$QEMU_IO" -f qcow2 -c 'write -P 0x61 0 8M' cb_base.qcow2 >/dev/null
q create -q -f qcow2 -b cb_base.qcow2 -F qcow2 cb_mid.qcow2
"$QEMU_IO" -f qcow2 -c 'write -P 0x63 1M 64k' cb_mid.qcow2 >/dev/null
q create -q -f qcow2 -o cluster_size=4k -b cb_mid.qcow2 -F qcow2 cb_top.qcow2
"$QEMU_IO" -f qcow2 -c 'write -P 0x62 68k 4k' -c 'write -P 0x64 1028k 4k' cb_top.qcow2 >/dev/null
q convert -O raw cb_top.qcow2 cb_want.raw
expect "convert -B onto larger clusters" m convert -O qcow2 -B cb_mid.qcow2 -F qcow2 cb_top.qcow2 cb_out.qcow2
expect "qemu-img check of convert -B" q check cb_out.qcow2
expect "qemu-img reads convert -B" q convert -O raw cb_out.qcow2 back.raw &&
	same_bytes "convert -B with larger target clusters" cb_want.raw back.raw
expect "commit into an image with its own backing" m commit -q cb_top.qcow2
expect "qemu-img check of the committed mid" q check cb_mid.qcow2
expect "qemu-img reads the committed mid" q convert -O raw cb_mid.qcow2 back.raw &&
	same_bytes "commit with larger base clusters" cb_want.raw back.raw

# ---- qemu-img writes, maquina reads ----
for o in "" "-o compat=0.10" "-o cluster_size=512" "-o cluster_size=4k" "-o cluster_size=2M" \
	 "-o extended_l2=on" "-o extended_l2=on,cluster_size=2M" "-o lazy_refcounts=on" \
	 "-o refcount_bits=1" "-o refcount_bits=64" "-o compression_type=zstd" "-c" \
	 "-c -o compression_type=zstd" "-c -o cluster_size=512" "-o preallocation=metadata"; do
	rm -f q.qcow2 back.raw
	q convert -O qcow2 $o src.raw q.qcow2
	expect "maquina check of qemu-img $o" m check q.qcow2
	expect "maquina convert of qemu-img $o" m convert -O raw q.qcow2 back.raw &&
		same_bytes "qemu-img $o" src.raw back.raw
	expect "maquina compare of qemu-img $o" m compare src.raw q.qcow2
	expect "maquina convert to qcow2 of qemu-img $o" m convert -O qcow2 q.qcow2 back.qcow2 &&
		expect "qemu-img check of the copy" q check back.qcow2 &&
		expect "qemu-img compare of the copy" q compare src.raw back.qcow2
	rm -f back.qcow2
done
# snapshots and dirty lazy refcounts made by qemu-img
rm -f q.qcow2
q convert -O qcow2 -o lazy_refcounts=on src.raw q.qcow2
q snapshot -c one q.qcow2
"$QEMU_IO" -f qcow2 -c 'write -P 0x42 0 2M' q.qcow2 >/dev/null
expect "maquina reads a snapshot" m convert -O raw -l one q.qcow2 back.raw &&
	same_bytes "qemu-img snapshot" src.raw back.raw
q convert -O raw q.qcow2 cur.raw
expect "maquina reads the current state" m convert -O raw q.qcow2 back.raw &&
	same_bytes "after snapshot" cur.raw back.raw
printf '\x01' | dd of=q.qcow2 bs=1 seek=79 conv=notrunc status=none
expect "maquina reads a dirty image" m convert -O raw q.qcow2 back.raw &&
	same_bytes "dirty" cur.raw back.raw
expect "maquina snapshot -a on a dirty image" m snapshot -a one q.qcow2
expect "qemu-img check after maquina's repair on open" q check q.qcow2
expect "qemu-img reads it" q convert -O raw q.qcow2 back.raw &&
	same_bytes "dirty then apply" src.raw back.raw

finish
