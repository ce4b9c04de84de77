#!/bin/sh
# 'maquina run' refuses user mistakes with a clear message and a non-zero
# status, and never starts a guest for them.  run_errors.sh MAQUINA BUILD_ROOT
set -u
m=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
# expect STATUS PATTERN ARGS...: runs 'maquina run ARGS', checks both
expect() {
	want=$1 pat=$2
	shift 2
	"$m" run "$@" >"$tmp/out" 2>&1 </dev/null
	st=$?
	if [ "$st" -ne "$want" ] || ! grep -q -- "$pat" "$tmp/out"; then
		echo "FAIL: maquina run $*: status $st (want $want), output:"; cat "$tmp/out"
		fails=$((fails + 1))
	else
		echo "ok: maquina run $(echo "$*" | cut -c1-80) -> $st: $(head -1 "$tmp/out")"
	fi
}
printf 'not a kernel\n' >"$tmp/text"
head -c 4096 /dev/zero >"$tmp/zeros"
expect 2 "no kernel: give one with --kernel"
expect 2 "is not known" --kernel "$tmp/text" --bogus
expect 1 "cannot read the kernel $tmp/missing: No such file" --kernel "$tmp/missing"
expect 1 "Is a directory" --kernel "$tmp"
expect 1 "neither a Linux bzImage nor a multiboot ELF kernel" --kernel "$tmp/text"
expect 1 "neither a Linux bzImage nor a multiboot ELF kernel" --kernel "$tmp/zeros"
expect 2 "is not a size between 16M and 1T" --kernel "$tmp/text" --memory 12Q
expect 2 "is not a size between 16M and 1T" --kernel "$tmp/text" --memory 1M
expect 2 "is not a number from 1 to" --kernel "$tmp/text" --cpus 0
expect 1 "unknown serial backend .bogus.; use stdio, file:PATH, unix:PATH or null" --kernel "$tmp/text" --serial bogus
expect 1 "cannot listen on unix socket" --kernel "$tmp/text" --serial "unix:$tmp/nodir/sock"
expect 2 "accelerator 'kvmx' is not built into this maquina" --kernel "$tmp/text" --accel kvmx
# virtio devices
expect 2 "unknown format 'vmdk'" --kernel "$tmp/text" --disk format=vmdk,path=x
expect 2 "is not known, lacks its value or takes none" --kernel "$tmp/text" --disk
expect 2 "option '--rng=3' is not known, lacks its value or takes none" --kernel "$tmp/text" --rng=3
many=""
for i in $(seq 17); do many="$many --disk $tmp/d$i"; done
# shellcheck disable=SC2086
expect 2 "too many --disk options: 16 at most" --kernel "$tmp/text" $many
expect 2 "unknown backend 'bogus' (expected 'user' or 'tap')" --kernel "$tmp/text" --net bogus
expect 2 "host port '99999' is not a number in 1-65535" --kernel "$tmp/text" --net user,hostfwd=tcp::99999-:22
if "$(dirname "$0")/../../scripts/guest-assets" "$build" >/dev/null 2>&1; then
	k="$build/guest/vmlinuz"
	expect 1 "guest memory is too small for this kernel" --kernel "$k" --memory 16M
	expect 1 "kernel command line is 5000 bytes, but this kernel accepts at most" \
		--kernel "$k" --append "$(head -c 5000 /dev/zero | tr '\0' a)"
	expect 1 "cannot read the initrd $tmp/nope" --kernel "$k" --initrd "$tmp/nope"
	expect 1 "run: --disk path=$tmp/missing.qcow2: $tmp/missing.qcow2: could not open: No such file" \
		--kernel "$k" --disk "path=$tmp/missing.qcow2"
	expect 1 "run: --disk $tmp/zeros,format=qcow2: $tmp/zeros" --kernel "$k" --disk "$tmp/zeros,format=qcow2"
fi
[ "$fails" -eq 0 ]
