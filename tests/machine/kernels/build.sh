#!/bin/sh
# Builds a multiboot test kernel: build.sh OUTPUT boot.S file.c link.ld
set -eu
out=$1 boot=$2 src=$3 lds=$4
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags="-m64 -ffreestanding -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only -O1
       -fno-stack-protector -nostdlib -fno-asynchronous-unwind-tables -fno-sanitize=all"
# shellcheck disable=SC2086
$cc $flags -c "$boot" -o "$tmp/boot.o"
# shellcheck disable=SC2086
$cc $flags -c "$src" -o "$tmp/k.o"
ld -m elf_x86_64 -T "$lds" -nostdlib -z max-page-size=0x1000 -z noexecstack \
   --no-warn-rwx-segments "$tmp/boot.o" "$tmp/k.o" -o "$out"
