#!/usr/bin/env python3
"""Boots Debian's kernel with the busybox shell initramfs on the software
CPU, with the serial console on maquina's stdin/stdout, types commands at
the shell and checks the answers, then powers off.

    shell_linux.py MAQUINA SOURCE_ROOT BUILD_ROOT
"""
import os
import re
import select
import subprocess
import sys
import time


def main():
    maquina, src, build = sys.argv[1:4]
    subprocess.run([os.path.join(src, "scripts/guest-assets"), "--shell", build], check=True)
    guest = os.path.join(build, "guest")
    proc = subprocess.Popen(
        [maquina, "run", "--kernel", os.path.join(guest, "vmlinuz"),
         "--initrd", os.path.join(guest, "initramfs-shell.gz"),
         "--append", "console=ttyS0 quiet", "--memory", "512M", "--no-reboot"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = b""

    def expect(what, timeout, regex=False):
        nonlocal out
        deadline = time.time() + timeout
        while (re.search(what.encode(), out) is None) if regex else (what.encode() not in out):
            left = deadline - time.time()
            if left <= 0 or proc.poll() is not None:
                sys.stdout.write(out.decode(errors="replace"))
                raise SystemExit("shell_linux: did not see %r (maquina %s)" %
                                 (what, "exited %s" % proc.returncode if proc.poll() is not None else "still running"))
            r, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if r:
                chunk = os.read(proc.stdout.fileno(), 4096)
                out += chunk

    def send(line):
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()

    try:
        expect("busybox shell; poweroff -f to quit", 1200)
        time.sleep(0.5)
        send("echo answer-$((6 * 7))")
        expect("answer-42", 120)
        send("cat /proc/version")
        expect("Linux version 6.", 120)
        send("echo $((123456789 * 3)) > /tmp/x; cat /tmp/x")
        expect("370370367", 120)
        # time: the guest's clock follows the host's, and sleep 1 sleeps
        # about a second
        send("echo T0=$(date +%s); sleep 1; echo T1=$(date +%s)")
        expect(r"T1=\d+\r?\n", 120, regex=True)  # the whole number, not a partial read
        t0 = int(re.search(rb"T0=(\d+)", out).group(1))
        t1 = int(re.search(rb"T1=(\d+)", out).group(1))
        if not (1 <= t1 - t0 <= 3):
            raise SystemExit("shell_linux: sleep 1 took %d s of guest time" % (t1 - t0))
        if abs(t0 - time.time()) > 30:
            raise SystemExit("shell_linux: guest date %d is far from the host's %d" % (t0, time.time()))
        # an idle guest (the shell waiting for input) costs almost no host CPU
        def cpu_seconds():
            with open("/proc/%d/stat" % proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        time.sleep(2)
        c0 = cpu_seconds()
        time.sleep(3)
        idle = cpu_seconds() - c0
        print("shell_linux: %.2f s of host CPU while the guest idled for 3 s" % idle)
        if idle > 1.5:
            raise SystemExit("shell_linux: the idle guest used %.2f s of host CPU in 3 s" % idle)
        send("poweroff -f")
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    sys.stdout.write(out.decode(errors="replace")[-3000:])
    if status != 0:
        raise SystemExit("shell_linux: maquina exited with %d after poweroff, expected 0" % status)
    print("\nshell_linux: the shell answered typed commands")


if __name__ == "__main__":
    main()
