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

finish() {
	echo "$NB_CASES cases, $NB_FAIL failed"
	[ "$NB_FAIL" = 0 ]
}
