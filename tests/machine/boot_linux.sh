#!/bin/sh
# Boots Debian's stock kernel with the busybox initramfs on the software
# CPU (scripts/guest-assets builds both, cached) and checks what the guest
# did: /proc/cpuinfo printed, the sha256 of the file it generated, the
# marker line, and its 'poweroff -f' ending maquina with status 0.
#   boot_linux.sh MAQUINA SOURCE_ROOT BUILD_ROOT [CPUS]
# With CPUS > 1 it also checks that the guest brought every CPU up.
set -u
maquina=$1 src=$2 build=$3 cpus=${4:-1}
"$src/scripts/guest-assets" "$build" || exit 1
guest="$build/guest"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
timeout 1200 "$maquina" run --kernel "$guest/vmlinuz" --initrd "$guest/initramfs.gz" \
	--append "console=ttyS0 quiet" --memory 512M --cpus "$cpus" --serial "file:$log" --no-reboot
status=$?
echo "boot_linux: maquina exited with status $status after $(( $(date +%s) - start )) s"
tr -d '\r' <"$log" | tail -n 40
fail() { echo "boot_linux: $*" >&2; exit 1; }
[ "$status" -eq 0 ] || fail "expected status 0 from the guest's poweroff"
grep -q "^model name.*maquina" "$log" || fail "/proc/cpuinfo was not printed"
want=$(cat "$guest/expected-sha256")
got=$(tr -d '\r' <"$log" | sed -n 's/^MAQUINA-SHA256 //p')
[ "$got" = "$want" ] || fail "sha256 in the guest: '$got', expected '$want'"
grep -q "MAQUINA-BOOT-OK" "$log" || fail "no MAQUINA-BOOT-OK marker"
n=$(grep -c "^processor" "$log")
[ "$n" -eq "$cpus" ] || fail "/proc/cpuinfo lists $n processors, expected $cpus"
exit 0
