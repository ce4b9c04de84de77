#!/bin/sh
# Boots a multiboot test kernel on the software CPU and checks its report:
#   run_kernel.sh MAQUINA KERNEL
# The kernel prints TAP-like "ok N - ..." lines on COM1 and leaves through
# the debug-exit port with its failure count v: maquina exits (v << 1) | 1.
set -u
maquina=$1 kernel=$2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 120 "$maquina" run --kernel "$kernel" --memory 64M --serial "file:$log" --no-reboot
status=$?
cat "$log"
if [ "$status" -ne 1 ]; then
	echo "run_kernel: maquina exited with status $status, expected 1 (all tests passed)" >&2
	exit 1
fi
grep -q "all passed" "$log" || { echo "run_kernel: no 'all passed' line" >&2; exit 1; }
grep -q "^not ok" "$log" && exit 1
exit 0
