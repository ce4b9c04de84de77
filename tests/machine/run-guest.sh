#!/bin/sh
# Boots a test guest on the whole machine and checks what it reports.
#   run-guest.sh MAQUINA KERNEL STATUS MARKER [maquina run options...]
# Passes if maquina exits with STATUS (the guest's debug-exit) and the
# serial output contains MARKER.  Skips (77) while 'maquina run' cannot
# boot a kernel yet.
m=$1 k=$2 want=$3 marker=$4
shift 4
"$m" run --help 2>&1 | grep -q -- '--kernel' || {
	echo "this maquina has no VMM behind 'run' yet"
	exit 77
}
out=$(timeout 120 "$m" run --no-reboot --kernel "$k" --serial stdio "$@" </dev/null 2>&1)
st=$?
printf '%s\n' "$out"
[ "$st" = "$want" ] || { echo "exit status $st, expected $want"; exit 1; }
printf '%s\n' "$out" | grep -q "$marker" || { echo "no '$marker' in the output"; exit 1; }
exit 0
