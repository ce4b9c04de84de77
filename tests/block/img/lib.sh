# Shared helpers of the 'maquina img' shell tests (sourced).
#
# Normalisation of outputs between qemu-img and maquina img, and only this:
#  - the program name: "qemu-img: " -> "maquina: ", "'qemu-img --help'" ->
#    "'maquina img --help'";
#  - "disk size:" / "actual-size": they count the blocks the file system
#    allocated, which depends on how each tool wrote (preallocation
#    strategy, hole punching), not on the image's content;
#  - the progress bar of -p is compared as its last line only.
set -u
export TZ=UTC LC_ALL=C
MAQUINA=$(realpath "$1")
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_IO=${QEMU_IO:-qemu-io}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
NB_CASES=0
NB_FAIL=0

q() { "$QEMU_IMG" "$@"; }
m() { "$MAQUINA" img "$@"; }

norm() {
	sed -e 's/qemu-img: /maquina: /g' \
	    -e "s/'qemu-img --help'/'maquina img --help'/g" \
	    -e 's/^disk size: .*/disk size: X/' \
	    -e 's/"actual-size": [0-9]*/"actual-size": X/' \
	    -e 's/"date-n\{0,1\}sec": [0-9]*/"date": X/' \
	    -e 's/.*\r//'
}

fail() {
	NB_FAIL=$((NB_FAIL + 1))
	echo "FAIL: $*" >&2
}

# diff_outputs NAME: compares q.{out,err,rc} with m.{out,err,rc} (normalised)
diff_outputs() {
	local name=$1
	norm <q.out >q.nout; norm <m.out >m.nout
	norm <q.err >q.nerr; norm <m.err >m.nerr
	if [ "$(cat q.rc)" != "$(cat m.rc)" ]; then
		fail "$name: exit code qemu-img $(cat q.rc) maquina $(cat m.rc)"
		cat m.err >&2
	fi
	if ! cmp -s q.nout m.nout; then
		fail "$name: stdout differs"
		diff -u q.nout m.nout | head -40 >&2
	fi
	if [ "${IGNORE_STDERR:-0}" = 0 ] && ! cmp -s q.nerr m.nerr; then
		fail "$name: stderr differs"
		diff -u q.nerr m.nerr | head -20 >&2
	fi
}

# same ARGS...: both tools on the same files (read-only commands)
same() {
	NB_CASES=$((NB_CASES + 1))
	q "$@" >q.out 2>q.err; echo $? >q.rc
	m "$@" >m.out 2>m.err; echo $? >m.rc
	diff_outputs "img $*"
}

# rc_only ARGS...: both tools, same exit code, and maquina says something
# on stderr when failing (for errors whose wording is the driver's own)
rc_only() {
	NB_CASES=$((NB_CASES + 1))
	q "$@" >q.out 2>q.err; echo $? >q.rc
	m "$@" >m.out 2>m.err; echo $? >m.rc
	if [ "$(cat q.rc)" != "$(cat m.rc)" ]; then
		fail "img $*: exit code qemu-img $(cat q.rc) maquina $(cat m.rc)"
		cat m.err >&2
	elif [ "$(cat m.rc)" != 0 ] && [ ! -s m.err ]; then
		fail "img $*: failed without a message"
	fi
}

# pair SETUP ARGS...: runs SETUP in fresh dirs qd/ and md/, then the command
# with qemu-img in qd/ and maquina in md/; compares the outputs.  The
# resulting files stay there for the caller to compare.
pair() {
	local setup=$1
	shift
	NB_CASES=$((NB_CASES + 1))
	rm -rf qd md
	mkdir qd
	(cd qd && $setup) >/dev/null 2>&1 || { fail "setup $setup"; return; }
	cp -a qd md
	(cd qd && q "$@" >../q.out 2>../q.err; echo $? >../q.rc)
	(cd md && m "$@" >../m.out 2>../m.err; echo $? >../m.rc)
	[ "${PAIR_NODIFF:-0}" = 1 ] || diff_outputs "pair[$setup] img $*"
}

# same_image FILE: qd/FILE and md/FILE hold the same guest data, qemu-img
# check finds the maquina one clean, and their info matches
same_image() {
	local f=$1 fmt=${2:-}
	NB_CASES=$((NB_CASES + 1))
	if ! q compare ${fmt:+-f $fmt -F $fmt} "qd/$f" "md/$f" >cmp.out 2>&1; then
		fail "$f: content differs from qemu-img's: $(cat cmp.out)"
	fi
	if [ "$(q info --output=json qd/"$f" | sed -n 's/.*"format": "\(.*\)".*/\1/p' | head -1)" = qcow2 ]; then
		if ! q check "md/$f" >chk.out 2>&1; then
			fail "$f: qemu-img check of maquina's image: $(cat chk.out)"
		fi
		# icount: qemu-img 7.2 stores 0 in the snapshots it makes, the
		# block layer stores -1 ("unknown", as the spec says); not compared
		(cd qd && q info --output=json "$f" | norm | grep -v '"icount"') >qi.json
		(cd md && q info --output=json "$f" | norm | grep -v '"icount"') >mi.json
		if ! cmp -s qi.json mi.json; then
			fail "$f: qemu-img info differs"
			diff -u qi.json mi.json | head -20 >&2
		fi
	fi
}

# make_images: the images qemu-img makes for the golden tests (in the cwd)
make_images() {
	qio() { "$QEMU_IO" -f qcow2 "$@" >/dev/null; }
	poke() { # poke FILE OFFSET HEXBYTES
		printf "$(echo "$3" | sed 's/../\\x&/g')" |
			dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none
	}

	# ---- images made by qemu-img ----
	q create -q -f qcow2 plain.qcow2 64M
	q create -q -f qcow2 data.qcow2 64M
	qio -c 'write -P 0xab 0 1M' -c 'write -z 2M 1M' -c 'write -P 5 10M 64k' \
	    -c 'write -P 7 40M 3M' data.qcow2
	q create -q -f qcow2 -o compat=0.10 v2.qcow2 32M
	qio -c 'write -P 1 1M 128k' -c 'write -z 4M 64k' v2.qcow2
	q create -q -f qcow2 -o compression_type=zstd zstd.qcow2 16M
	q create -q -f qcow2 -o extended_l2=on ext.qcow2 16M
	qio -c 'write -P 3 4k 4k' -c 'write -P 4 1M 64k' ext.qcow2
	q create -q -f qcow2 -o lazy_refcounts=on lazy.qcow2 16M
	q create -q -f qcow2 -o refcount_bits=64 rc64.qcow2 16M
	qio -c 'write -P 9 0 256k' rc64.qcow2
	q create -q -f qcow2 -o refcount_bits=1 rc1.qcow2 16M
	q create -q -f qcow2 -o cluster_size=512 c512.qcow2 4M
	qio -c 'write -P 2 0 7k' -c 'write -P 3 1M 512' c512.qcow2
	q create -q -f qcow2 -o cluster_size=2M c2m.qcow2 64M
	qio -c 'write -P 2 3M 5M' c2m.qcow2
	q convert -c -O qcow2 data.qcow2 comp.qcow2
	q convert -c -O qcow2 -o compression_type=zstd data.qcow2 compz.qcow2
	q create -q -f raw raw.img 8M
	q convert -O raw data.qcow2 data.raw
	q create -q -f qcow2 -b data.qcow2 -F qcow2 over.qcow2
	qio -c 'write -P 0x11 512k 1M' over.qcow2
	q create -q -f qcow2 -b over.qcow2 -F qcow2 over2.qcow2
	qio -c 'write -P 0x22 8M 64k' over2.qcow2
	cp data.qcow2 snap.qcow2
	q snapshot -c first snap.qcow2
	qio -c 'write -P 0x33 0 64k' snap.qcow2
	q snapshot -c second snap.qcow2
	q create -q -f qcow2 small.qcow2 32M
	qio -c 'write -P 0xab 0 1M' small.qcow2
	# a leaked cluster (refcount 1, no reference) and a corruption (the L1
	# table's refcount set to 0) in a 64 KiB-cluster image: refcount block at
	# 0x20000, L1 at 0x30000 (cluster 3)
	cp data.qcow2 leak.qcow2
	size=$(stat -c %s leak.qcow2)
	poke leak.qcow2 $((0x20000 + 2 * (size / 65536))) 0001
	truncate -s $((size + 65536)) leak.qcow2
	cp data.qcow2 corrupt.qcow2
	poke corrupt.qcow2 $((0x20000 + 2 * 3)) 0000
	# dirty bit on a lazy-refcount image
	cp lazy.qcow2 dirty.qcow2
	poke dirty.qcow2 79 01
	# an unknown incompatible feature bit (bit 20)
	cp plain.qcow2 unknown.qcow2
	poke unknown.qcow2 77 10
	# a truncated image: the header only
	head -c 512 data.qcow2 >trunc.qcow2
	# the corrupt bit on a healthy image
	cp data.qcow2 corruptbit.qcow2
	poke corruptbit.qcow2 79 02
}

finish() {
	echo "$NB_CASES cases, $NB_FAIL failed"
	[ "$NB_FAIL" = 0 ]
}
