#!/usr/bin/env python3
"""Crash safety: a writer using the block layer (blkio) is killed with
SIGKILL at random points; then qemu-img check must report a clean image or
leaked clusters only, and every sector must read back either as it was at
the writer's last completed flush or as one of the writes issued after it.

  crash.py BLKIO WORKDIR [rounds]
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

BLKIO, WORK = sys.argv[1], sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 6
SECTOR = 512
failures = 0
checks = 0
killed = 0


def pattern(off, length, seed):
    if not seed:
        return bytes(length)
    return bytes(((seed * 131 + p * 7 + (p >> 9)) & 0xff)
                 for p in range(off, off + length))


def check(cond, msg):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL: " + msg, flush=True)
    return cond


def one_round(img, size, cs, rnd, state, opts):
    """state: bytes of the disk at the last completed flush (a bytearray
    kept in step).  Builds a workload, runs it, kills it, verifies."""
    ops = []        # (args, sector -> content hint) per op
    marks = []      # index into ops after which mark k was printed
    nsec = size // SECTOR
    for k in range(300):
        r = rnd.random()
        if r < 0.6:
            s0 = rnd.randrange(0, nsec)
            n = min(rnd.choice([1, 8, cs // SECTOR, 3 * cs // SECTOR + 1, 256]),
                    nsec - s0)
            seed = rnd.randrange(1, 250)
            ops.append((["w", str(s0 * SECTOR), str(n * SECTOR), str(seed)],
                        ("w", s0, n, seed)))
        elif r < 0.7 and "refcount_bits=1" not in opts:
            c = rnd.randrange(0, size // cs)
            seed = rnd.randrange(1, 250)
            ops.append((["c", str(c * cs), str(cs), str(seed)],
                        ("w", c * cs // SECTOR, cs // SECTOR, seed)))
        elif r < 0.78:
            s0 = rnd.randrange(0, nsec)
            n = min(rnd.choice([8, cs // SECTOR, 4 * cs // SECTOR]), nsec - s0)
            op = rnd.choice(["z", "Z", "d"])
            if op == "d":
                # discard frees whole clusters only (they read as zeros)
                spc = cs // SECTOR
                a = (s0 + spc - 1) // spc * spc
                e = (s0 + n) // spc * spc
                if s0 + n == nsec:
                    e = nsec
                ops.append((["d", str(s0 * SECTOR), str(n * SECTOR)],
                            ("z", a, max(0, e - a), 0)))
            else:
                ops.append(([op, str(s0 * SECTOR), str(n * SECTOR)],
                            ("z", s0, n, 0)))
        else:
            ops.append((["f", "mark", str(len(marks))], ("f",)))
            marks.append(len(ops))
    args = [BLKIO, img]
    for a, _ in ops:
        args += a
    p = subprocess.Popen(args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(rnd.uniform(0.02, 0.6))
    p.send_signal(signal.SIGKILL)
    out, err = p.communicate()
    if p.returncode not in (-9, 0):
        check(False, "writer failed rc %s: %s" % (p.returncode, err[-2000:]))
        return None
    done = [int(l.split()[1]) for l in out.splitlines() if l.startswith("mark")]
    last = done[-1] if done else -1
    flushed_upto = marks[last] if last >= 0 else 0
    global killed
    if p.returncode == 0:
        flushed_upto = len(ops)  # finished and closed: everything is stable
    else:
        killed += 1
    # candidate contents per sector: stable state + later writes
    stable = bytearray(state)
    for _, (kind, *rest) in ops[:flushed_upto]:
        if kind == "w":
            s0, n, seed = rest
            stable[s0 * SECTOR:(s0 + n) * SECTOR] = pattern(
                s0 * SECTOR, n * SECTOR, seed)
        elif kind == "z":
            s0, n, _ = rest
            stable[s0 * SECTOR:(s0 + n) * SECTOR] = bytes(n * SECTOR)
    later = {}
    for _, (kind, *rest) in ops[flushed_upto:]:
        if kind == "f":
            continue
        s0, n, seed = rest
        for s in range(s0, s0 + n):
            later.setdefault(s, []).append(seed if kind == "w" else 0)
    q = subprocess.run(["qemu-img", "check", img], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    check(q.returncode in (0, 3),
          "%s: qemu-img check after kill rc %d:\n%s" % (opts, q.returncode,
                                                        q.stdout[-3000:]))
    raw = os.path.join(WORK, "crash.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", img, raw], check=True)
    with open(raw, "rb") as f:
        got = f.read()
    bad = 0
    for s in range(nsec):
        cur = got[s * SECTOR:(s + 1) * SECTOR]
        if cur == stable[s * SECTOR:(s + 1) * SECTOR]:
            continue
        ok = any(cur == pattern(s * SECTOR, SECTOR, seed)
                 for seed in later.get(s, []))
        if not ok:
            bad += 1
            if bad < 4:
                print("  sector %d differs (flushed ops %d/%d)" %
                      (s, flushed_upto, len(ops)))
    check(bad == 0, "%s: %d sectors lost flushed data or hold garbage" %
          (opts, bad))
    # the next round starts from what is on disk now
    return bytearray(got)


def main():
    if not shutil.which("qemu-img"):
        print("qemu-img not found (install qemu-utils): skipped")
        sys.exit(77)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    configs = ["cluster_size=65536", "cluster_size=4096",
               "lazy_refcounts=on,cluster_size=16384",
               "cluster_size=512,refcount_bits=1",
               "extended_l2=on,cluster_size=32768", "compat=0.10"]
    rnd = random.Random(int(os.environ.get("CRASH_SEED", "42")))
    for i, opts in enumerate(configs):
        img = os.path.join(WORK, "crash%d.qcow2" % i)
        cs = int(dict(kv.split("=") for kv in opts.split(","))
                 .get("cluster_size", 65536))
        size = 4 << 20
        subprocess.run([BLKIO, "create", img, str(size), opts], check=True)
        state = bytearray(size)
        for r in range(ROUNDS):
            state = one_round(img, size, cs, rnd, state, opts)
            if state is None:
                break
        print("ok crash %s" % opts, flush=True)
    print("%d writers killed mid-run" % killed)
    print("%d checks, %d failed" % (checks, failures))
    sys.exit(1 if failures else 0)


main()
