#!/usr/bin/env python3
"""Two-way interchange tests between the block layer (through blkio) and
qemu-img / qemu-io.

  interop.py BLKIO WORKDIR [group]

Groups: ours (images written by the block layer pass qemu-img check and read
back identically through qemu-img convert), theirs (images made by qemu-img
read back identically through the block layer, and check agrees), corrupt
(check agrees on damaged images; bad images give clean errors and are never
written).  Exits non-zero on the first failure, printing what differed.
"""
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys

BLKIO = sys.argv[1]
WORK = sys.argv[2]
GROUPS = sys.argv[3:] or ["ours", "theirs", "corrupt"]
failures = 0
checks = 0


def run(*args, ok=(0,), capture=True):
    p = subprocess.run(list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if ok is not None and p.returncode not in ok:
        raise RuntimeError("%s -> rc %d\n%s%s" % (" ".join(args), p.returncode,
                                                 p.stdout, p.stderr))
    return p


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        fail(msg)
    return cond


def pattern(off, length, seed):
    if not seed:
        return bytes(length)
    return bytes(((seed * 131 + p * 7 + (p >> 9)) & 0xff)
                 for p in range(off, off + length))


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_sha(path):
    with open(path, "rb") as f:
        return sha(f.read())


def qemu_raw(img, out):
    run("qemu-img", "convert", "-O", "raw", img, out)
    with open(out, "rb") as f:
        return f.read()


def our_raw(img, out):
    run(BLKIO, "-r", img, "dump", out)
    with open(out, "rb") as f:
        return f.read()


def qemu_check(img):
    p = run("qemu-img", "check", "--output=json", img, ok=None)
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = {}
    return p.returncode, j


def our_check(img, mode="check"):
    p = run(BLKIO, img, mode, ok=None)
    res = {}
    for line in p.stdout.splitlines():
        if line.startswith("corruptions="):
            for kv in line.split():
                k, v = kv.split("=")
                res[k] = v
    return p.returncode, res, p.stdout + p.stderr


def path(name):
    return os.path.join(WORK, name)


# ---------------------------------------------------------------- ours

def random_workload(img, size, cs, rnd, model, ops=60, compressed=True,
                    snapshots=True, v3=True):
    """Runs random operations on img through blkio, mirroring them in
    model (a bytearray)."""
    args = []
    snaps = {}
    nsnap = 0
    for _ in range(ops):
        r = rnd.random()
        if r < 0.45:
            off = rnd.randrange(0, size)
            ln = min(rnd.choice([1, 511, 4096, cs, 3 * cs + 17, 200000]),
                     size - off)
            seed = rnd.randrange(1, 250)
            args += ["w", str(off), str(ln), str(seed)]
            model[off:off + ln] = pattern(off, ln, seed)
        elif r < 0.55 and compressed:
            c = rnd.randrange(0, size // cs)
            off = c * cs
            ln = min(cs, size - off)
            seed = rnd.randrange(1, 250)
            # compressible: the pattern repeats every 512 bytes mostly
            args += ["c", str(off), str(ln), str(seed)]
            model[off:off + ln] = pattern(off, ln, seed)
        elif r < 0.65:
            off = rnd.randrange(0, size)
            ln = min(rnd.choice([cs, 4 * cs, 1000, 70000]), size - off)
            args += [rnd.choice(["z", "Z"]), str(off), str(ln)]
            model[off:off + ln] = bytes(ln)
        elif r < 0.72:
            # discard: whole clusters inside become zero (no backing)
            off = rnd.randrange(0, size)
            ln = min(rnd.choice([cs, 5 * cs, 3000]), size - off)
            args += ["d", str(off), str(ln)]
            s = (off + cs - 1) // cs * cs
            e = (off + ln) // cs * cs if off + ln != size else size
            if e > s:
                model[s:e] = bytes(e - s)
        elif r < 0.78 and snapshots:
            nsnap += 1
            name = "s%d" % nsnap
            args += ["snap", name]
            snaps[name] = bytes(model)
        elif r < 0.82 and snapshots and snaps:
            name = rnd.choice(sorted(snaps))
            args += ["apply", name]
            model[:] = snaps[name]
        elif r < 0.85 and snapshots and snaps:
            name = rnd.choice(sorted(snaps))
            args += ["del", name]
            del snaps[name]
        else:
            args += ["f"]
    # run in a few processes so that open/close paths are exercised too
    k = 0
    while k < len(args):
        chunk = []
        n = 0
        while k < len(args) and n < 20:
            op = args[k]
            width = {"w": 4, "c": 4, "z": 3, "Z": 3, "d": 3, "snap": 2,
                     "apply": 2, "del": 2, "f": 1}[op]
            chunk += args[k:k + width]
            k += width
            n += 1
        run(BLKIO, img, *chunk)
    return snaps


def test_create_identical():
    """A new image made by the block layer is byte-identical to qemu-img's
    for the same options; preallocated images map the same; measure agrees.
    """
    opts = ["", "cluster_size=4096", "cluster_size=2097152", "compat=0.10",
            "compression_type=zstd,lazy_refcounts=on",
            "extended_l2=on,cluster_size=131072", "refcount_bits=64",
            "refcount_bits=1,cluster_size=1024"]
    for o in opts:
        for size in ("10G", "1M", "100000"):
            a, b = path("ci-a.qcow2"), path("ci-b.qcow2")
            for f in (a, b):
                if os.path.exists(f):
                    os.unlink(f)
            run(BLKIO, "create", a, size, o)
            run(*(["qemu-img", "create", "-q", "-f", "qcow2"] +
                  (["-o", o] if o else []) + [b, size]))
            check(file_sha(a) == file_sha(b),
                  "create %s %s: not byte-identical to qemu-img's" % (o, size))
    base = path("ci-base.raw")
    with open(base, "wb") as f:
        f.truncate(1 << 20)
    a, b = path("ci-a.qcow2"), path("ci-b.qcow2")
    os.unlink(a)
    os.unlink(b)
    run(BLKIO, "create", a, "0", "backing_file=ci-base.raw,backing_fmt=raw")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "ci-base.raw", "-F",
        "raw", b)
    check(file_sha(a) == file_sha(b), "create with backing: not identical")
    for mode in ("metadata", "falloc", "full"):
        os.unlink(a)
        os.unlink(b)
        run(BLKIO, "create", a, "16M", "preallocation=" + mode)
        run("qemu-img", "create", "-q", "-f", "qcow2", "-o",
            "preallocation=" + mode, b, "16M")
        ma = run("qemu-img", "map", "--output=json", a).stdout
        mb = run("qemu-img", "map", "--output=json", b).stdout
        check(ma == mb and qemu_check(a)[0] == 0,
              "preallocation=%s: map differs from qemu-img's" % mode)
        check(os.path.getsize(a) == os.path.getsize(b),
              "preallocation=%s: file size differs" % mode)
    for size, o in (("1G", ""), ("10G", "cluster_size=4096"),
                    ("1000000", "cluster_size=512,refcount_bits=1"),
                    ("5G", "extended_l2=on,cluster_size=131072")):
        mine = run(BLKIO, "measure", "-", size, o or "cluster_size=65536")
        q = json.loads(run(*(["qemu-img", "measure", "--output=json", "-O",
                              "qcow2", "--size", size] +
                             (["-o", o] if o else []))).stdout)
        check(mine.stdout.split() == [str(q["required"]),
                                      str(q["fully-allocated"])],
              "measure %s %s: ours %s qemu %s" % (size, o, mine.stdout, q))
    print("ok ours create/preallocation/measure like qemu-img", flush=True)


def test_ours():
    test_create_identical()
    configs = [
        dict(cluster_size=65536),
        dict(cluster_size=512),
        dict(cluster_size=4096, refcount_bits=1),
        dict(cluster_size=4096, refcount_bits=2),
        dict(cluster_size=4096, refcount_bits=4),
        dict(cluster_size=8192, refcount_bits=8),
        dict(cluster_size=16384, refcount_bits=32),
        dict(cluster_size=65536, refcount_bits=64),
        dict(cluster_size=2 * 1024 * 1024),
        dict(compat="0.10"),
        dict(compression_type="zstd"),
        dict(extended_l2="on", cluster_size=32768),
        dict(lazy_refcounts="on"),
    ]
    for i, cfg in enumerate(configs):
        cs = cfg.get("cluster_size", 65536)
        size = max(8 << 20, 8 * cs)
        img = path("ours%d.qcow2" % i)
        opts = ",".join("%s=%s" % kv for kv in cfg.items())
        run(BLKIO, "create", img, str(size), opts)
        rnd = random.Random(1000 + i)
        model = bytearray(size)
        snaps = cfg.get("refcount_bits", 16) >= 8
        random_workload(img, size, cs, rnd, model, snapshots=snaps)
        rc, j = qemu_check(img)
        check(rc == 0, "ours %s: qemu-img check rc %d %s" % (opts, rc, j))
        out = qemu_raw(img, path("q.raw"))
        check(sha(out) == sha(bytes(model)),
              "ours %s: qemu-img convert differs from the model" % opts)
        mine = our_raw(img, path("m.raw"))
        check(sha(mine) == sha(bytes(model)),
              "ours %s: our read differs from the model" % opts)
        orc, res, txt = our_check(img)
        check(orc == 0, "ours %s: our check rc %d: %s" % (opts, orc, txt))
        print("ok ours %s" % opts, flush=True)
    # a backing chain written by us: base (qcow2) <- mid (raw backing)...
    base = path("chain-base.raw")
    with open(base, "wb") as f:
        f.write(pattern(0, 4 << 20, 3))
    mid = path("chain-mid.qcow2")
    top = path("chain-top.qcow2")
    run(BLKIO, "create", mid, "0", "backing_file=chain-base.raw,backing_fmt=raw")
    run(BLKIO, mid, "w", "100000", "300000", "11", "d", "1M", "1M")
    run(BLKIO, "create", top, "6M",
        "backing_file=chain-mid.qcow2,backing_fmt=qcow2")
    run(BLKIO, top, "w", "5000", "70000", "12", "z", "2M", "128k",
        "w", "5M", "4096", "13")
    model = bytearray(pattern(0, 4 << 20, 3))
    model[100000:400000] = pattern(100000, 300000, 11)
    model[1 << 20:2 << 20] = bytes(1 << 20)
    model += bytes(2 << 20)
    model[5000:75000] = pattern(5000, 70000, 12)
    model[2 << 20:(2 << 20) + 131072] = bytes(131072)
    model[5 << 20:(5 << 20) + 4096] = pattern(5 << 20, 4096, 13)
    for img in (mid, top):
        rc, j = qemu_check(img)
        check(rc == 0, "chain %s: qemu-img check rc %d" % (img, rc))
    out = qemu_raw(top, path("q.raw"))
    check(sha(out) == sha(bytes(model)), "chain: qemu-img read differs")
    mine = our_raw(top, path("m.raw"))
    check(sha(mine) == sha(bytes(model)), "chain: our read differs")
    print("ok ours chain", flush=True)


# ---------------------------------------------------------------- theirs

def qemu_io(img, *cmds, fmt="qcow2"):
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    run(*(args + [img]))


def compare_read(img, what):
    q = qemu_raw(img, path("q.raw"))
    m = our_raw(img, path("m.raw"))
    return check(sha(q) == sha(m), "theirs %s: our read differs from "
                 "qemu-img convert" % what)


def compare_check(img, what):
    qrc, j = qemu_check(img)
    orc, res, txt = our_check(img)
    ok = check(qrc == orc, "theirs %s: check rc qemu %d ours %d\n%s\n%s" %
               (what, qrc, orc, j, txt))
    if ok and j and res:
        for qk, ok_ in (("corruptions", "corruptions"), ("leaks", "leaks"),
                        ("image-end-offset", "end"),
                        ("allocated-clusters", "allocated"),
                        ("total-clusters", "total"),
                        ("compressed-clusters", "compressed"),
                        ("fragmented-clusters", "fragmented")):
            if qk in j or qk in ("corruptions", "leaks"):
                check(int(j.get(qk, 0)) == int(res[ok_]),
                      "theirs %s: check %s qemu %s ours %s" %
                      (what, qk, j.get(qk, 0), res[ok_]))


def test_theirs():
    sizes = [512, 4096, 65536, 2 * 1024 * 1024]
    cases = []
    for cs in sizes:
        cases.append(("cs%d" % cs, "cluster_size=%d" % cs))
    cases += [("compat010", "compat=0.10"),
              ("zstd", "compression_type=zstd"),
              ("extl2", "extended_l2=on,cluster_size=65536"),
              ("rc1", "refcount_bits=1"), ("rc64", "refcount_bits=64"),
              ("lazy", "lazy_refcounts=on")]
    for name, opts in cases:
        img = path("t-%s.qcow2" % name)
        run("qemu-img", "create", "-f", "qcow2", "-o", opts, img, "16M")
        qemu_io(img, "write -P 0x11 0 1M", "write -P 0x22 3M 12k",
                "write -z 4M 1M", "write -P 0x33 4M 4096",
                "discard 3M 64k", "write -P 0x44 15M 4097",
                "write -P 0x55 7777 100")
        if "compat=0.10" not in opts:
            qemu_io(img, "write -z -u 0 64k")
        compare_read(img, name)
        compare_check(img, name)
        print("ok theirs %s" % name, flush=True)
    # compressed clusters, both algorithms
    src = path("t-src.raw")
    with open(src, "wb") as f:
        rnd = random.Random(5)
        for i in range(64):
            kind = i % 4
            if kind == 0:
                f.write(bytes(65536))
            elif kind == 1:
                f.write(bytes([i]) * 65536)
            elif kind == 2:
                f.write(rnd.randbytes(65536))
            else:
                t = (b"maquina %d " % i) * 5000
                f.write(t + bytes(65536 - len(t)))
    for ct in ("zlib", "zstd"):
        for cs in ("4k", "64k", "1M"):
            img = path("t-comp-%s-%s.qcow2" % (ct, cs))
            run("qemu-img", "convert", "-c", "-O", "qcow2", "-o",
                "compression_type=%s,cluster_size=%s" % (ct, cs), src, img)
            compare_read(img, "compressed %s %s" % (ct, cs))
            compare_check(img, "compressed %s %s" % (ct, cs))
            # our partial write over compressed clusters, then qemu reads
            run(BLKIO, img, "w", "70000", "10", "9", "w", "200000", "70000",
                "8")
            rc, _ = qemu_check(img)
            check(rc == 0, "compressed %s %s: qemu check after our write"
                  % (ct, cs))
            compare_read(img, "compressed+write %s %s" % (ct, cs))
            print("ok theirs compressed %s %s" % (ct, cs), flush=True)
    # backing chains: raw <- qcow2 <- qcow2 (v2) <- qcow2
    b0 = path("t-b0.raw")
    shutil.copy(src, b0)
    b1 = path("t-b1.qcow2")
    run("qemu-img", "create", "-f", "qcow2", "-b", "t-b0.raw", "-F", "raw", b1)
    qemu_io(b1, "write -P 0x61 100k 300k", "write -z 1M 200k")
    b2 = path("t-b2.qcow2")
    run("qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10", "-b",
        "t-b1.qcow2", "-F", "qcow2", b2)
    qemu_io(b2, "write -P 0x62 150k 10k")
    b3 = path("t-b3.qcow2")
    run("qemu-img", "create", "-f", "qcow2", "-o",
        "extended_l2=on,cluster_size=64k", "-b", "t-b2.qcow2", "-F", "qcow2",
        b3, "8M")
    qemu_io(b3, "write -P 0x63 1000 3000", "write -P 0x64 2M 100k",
            "discard 1M 64k")
    compare_read(b3, "backing chain")
    compare_check(b3, "backing chain")
    # our write into the extended-L2 top of the chain, then qemu reads
    run(BLKIO, b3, "w", "5000", "3000", "21", "w", "300000", "70000", "22")
    check(qemu_check(b3)[0] == 0, "chain: qemu check after our write")
    compare_read(b3, "backing chain after our write")
    print("ok theirs chain", flush=True)
    # internal snapshots
    img = path("t-snap.qcow2")
    run("qemu-img", "create", "-f", "qcow2", img, "8M")
    qemu_io(img, "write -P 0x71 0 1M")
    run("qemu-img", "snapshot", "-c", "one", img)
    qemu_io(img, "write -P 0x72 512k 1M")
    run("qemu-img", "snapshot", "-c", "two", img)
    qemu_io(img, "write -P 0x73 0 64k")
    compare_read(img, "snapshots (active)")
    compare_check(img, "snapshots")
    run("qemu-img", "snapshot", "-a", "one", img)
    compare_read(img, "snapshot applied by qemu")
    run(BLKIO, img, "apply", "two", "del", "one", "snap", "three")
    check(qemu_check(img)[0] == 0, "snapshots: qemu check after ours")
    compare_read(img, "snapshot applied by us")
    p = run("qemu-img", "snapshot", "-l", img)
    check("three" in p.stdout and "one" not in p.stdout.split("ID", 1)[1]
          .replace("three", ""), "snapshot list after ours: " + p.stdout)
    print("ok theirs snapshots", flush=True)
    # an unknown header extension survives a header rewrite by us
    img = path("t-ext.qcow2")
    run("qemu-img", "create", "-f", "qcow2", img, "4M")
    with open(img, "r+b") as f:
        c0 = bytearray(f.read(65536))
        hl = struct.unpack(">I", c0[100:104])[0]
        ext = struct.pack(">II", 0x12345678, 5) + b"hello\0\0\0"
        c0[hl:hl] = ext
        f.seek(0)
        f.write(bytes(c0[:65536]))
    base = path("t-ext-base.raw")
    with open(base, "wb") as f:
        f.truncate(4 << 20)
    run(BLKIO, img, "backing", "t-ext-base.raw", "raw", "w", "0", "4096", "3")
    with open(img, "rb") as f:
        c0 = f.read(65536)
    check(ext in c0, "unknown header extension lost on rewrite")
    info = json.loads(run("qemu-img", "info", "--output=json", img).stdout)
    check(info.get("backing-filename") == "t-ext-base.raw" and
          info.get("backing-filename-format") == "raw",
          "rewritten header: qemu-img info says %s" % info)
    check(qemu_check(img)[0] == 0, "rewritten header: qemu-img check")
    print("ok theirs unknown extension kept", flush=True)
    # persistent dirty bitmaps: their clusters are counted by check
    img = path("t-bitmap.qcow2")
    run("qemu-img", "create", "-f", "qcow2", img, "64M")
    run("qemu-img", "bitmap", "--add", img, "b0")
    qemu_io(img, "write -P 0x21 0 8M", "write -P 0x22 40M 1M")
    run("qemu-img", "bitmap", "--add", img, "b1")
    compare_read(img, "bitmaps")
    compare_check(img, "bitmaps")
    print("ok theirs bitmaps", flush=True)
    # lazy refcounts left dirty by killing a qemu-io writer
    img = path("t-dirty.qcow2")
    run("qemu-img", "create", "-f", "qcow2", "-o", "lazy_refcounts=on", img,
        "16M")
    p = subprocess.Popen(["qemu-io", "-f", "qcow2", "-c",
                          "write -P 0x5a 0 2M", "-c", "write -P 0x5b 4M 1M",
                          "-c", "flush", "-c", "sigraise 9", img],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.wait()
    with open(img, "rb") as f:
        hdr = f.read(80)
    dirty = struct.unpack(">Q", hdr[72:80])[0] & 1
    check(dirty == 1, "lazy: the killed writer left the dirty bit")
    compare_read(img, "lazy dirty")
    run(BLKIO, img, "w", "8M", "64k", "3")  # repair on open, then write
    rc, j = qemu_check(img)
    check(rc == 0, "lazy: qemu check after our repair-on-open rc %d" % rc)
    with open(img, "rb") as f:
        hdr = f.read(80)
    check(struct.unpack(">Q", hdr[72:80])[0] & 1 == 0,
          "lazy: dirty bit cleared after our clean close")
    print("ok theirs lazy dirty", flush=True)


# ---------------------------------------------------------------- corrupt

def be64(data, off):
    return struct.unpack(">Q", data[off:off + 8])[0]


def poke(img, off, fmt, value):
    with open(img, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, value))


def fresh(name, size="4M"):
    img = path(name)
    run("qemu-img", "create", "-f", "qcow2", img, size)
    qemu_io(img, "write -P 0x11 0 256k", "write -P 0x22 1M 64k")
    return img


def test_corrupt():
    # leaks and refcount errors: check agrees, repair fixes
    img = fresh("c-leak.qcow2")
    with open(img, "rb") as f:
        d = f.read(0x200)
    rt = be64(d, 48)
    with open(img, "rb") as f:
        f.seek(rt)
        rb = be64(f.read(8), 0)
    # a leak: refcount of a cluster far after the end set to 1
    with open(img, "rb") as f:
        f.seek(0, 2)
        end_cluster = f.tell() // 65536
    poke(img, rb + 2 * (end_cluster + 3), ">H", 1)
    compare_check(img, "leak")
    # a corruption: the L1 table's refcount set to 0
    img2 = fresh("c-ref0.qcow2")
    with open(img2, "rb") as f:
        d = f.read(0x200)
    l1 = be64(d, 40)
    rt = be64(d, 48)
    with open(img2, "rb") as f:
        f.seek(rt)
        rb = be64(f.read(8), 0)
    poke(img2, rb + 2 * (l1 // 65536), ">H", 0)
    compare_check(img2, "refcount 0")
    # a refcount too high on a data cluster (a leak of one reference)
    img3 = fresh("c-ref2.qcow2")
    with open(img3, "rb") as f:
        d = f.read(0x200)
        f.seek(be64(d, 40))
        l2 = be64(f.read(8), 0) & 0x00fffffffffffe00
        f.seek(l2)
        data0 = be64(f.read(8), 0) & 0x00fffffffffffe00
        f.seek(be64(d, 48))
        rb = be64(f.read(8), 0)
    poke(img3, rb + 2 * (data0 // 65536), ">H", 2)
    compare_check(img3, "refcount 2")
    # damaged tables: same verdict, counts and report lines as qemu-img
    def l1e(n):
        with open(n, "rb") as f:
            d = f.read(512)
            f.seek(be64(d, 40))
            return be64(f.read(8), 0)

    def first_l2e(n):
        l2 = l1e(n) & 0x00fffffffffffe00
        with open(n, "rb") as f:
            f.seek(l2)
            return l2, be64(f.read(8), 0)

    def l1_copied(n):
        with open(n, "rb") as f:
            l1 = be64(f.read(512), 40)
        poke(n, l1, ">Q", l1e(n) & ~(1 << 63))

    def l2_copied(n):
        l2, e = first_l2e(n)
        poke(n, l2, ">Q", e & ~(1 << 63))

    def l2_unaligned(n):
        l2, e = first_l2e(n)
        poke(n, l2, ">Q", e + 512)

    def l2_past_eof(n):
        l2, e = first_l2e(n)
        poke(n, l2 + 24, ">Q", (1 << 63) | 0x10000000)

    def reftable_zero(n):
        with open(n, "rb") as f:
            rt = be64(f.read(512), 48)
        poke(n, rt, ">Q", 0)

    for name, edit in (("l1-copied", l1_copied), ("l2-copied", l2_copied),
                       ("l2-unaligned", l2_unaligned),
                       ("l2-past-eof", l2_past_eof),
                       ("reftable-zero", reftable_zero)):
        im = fresh("c-%s.qcow2" % name)
        edit(im)
        compare_check(im, name)
        q = run("qemu-img", "check", im, ok=None)
        qlines = [l for l in q.stderr.splitlines() if l.strip()]
        _, _, txt = our_check(im)
        olines = [l for l in txt.splitlines()
                  if l.strip() and not l.startswith("corruptions=")]
        check(qlines == olines, "%s: report lines differ:\nqemu %s\nours %s"
              % (name, qlines, olines))
    # repairs: ours fixes, qemu agrees afterwards, data intact
    for im, mode in ((img, "check-leaks"), (img2, "check-all"),
                     (img3, "check-all")):
        before = qemu_raw(im, path("q.raw"))
        rc, res, txt = our_check(im, mode)
        check(rc == 0, "repair %s %s rc %d: %s" % (im, mode, rc, txt))
        qrc, j = qemu_check(im)
        check(qrc == 0, "after our repair of %s qemu check rc %d %s" %
              (im, qrc, j))
        check(sha(qemu_raw(im, path("q.raw"))) == sha(before),
              "repair of %s changed the data" % im)
    print("ok corrupt check/repair", flush=True)

    # bad images: a clean error, no crash, file untouched by read-write
    def bad(name, edit, expect):
        img = fresh(name)
        edit(img)
        h = file_sha(img)
        for args in ((BLKIO, "-r", img, "dump", path("x.raw")),
                     (BLKIO, img, "w", "0", "4096", "1")):
            p = run(*args, ok=None)
            check(p.returncode == 1 and expect in p.stderr and
                  "Sanitizer" not in p.stderr and img in p.stderr,
                  "bad %s: rc %d, stderr %r (want %r)" %
                  (name, p.returncode, p.stderr, expect))
        check(file_sha(img) == h, "bad %s: the file was modified" % name)

    def l1_past_eof(img):
        poke(img, 40, ">Q", 0x7f0000000)

    def l2_past_eof(img):
        with open(img, "rb") as f:
            l1 = be64(f.read(48), 40)
        poke(img, l1, ">Q", 0x8000000000000000 | 0x7f00000)

    def unknown_incompat(img):
        poke(img, 72, ">Q", 1 << 20)

    def absurd_size(img):
        poke(img, 24, ">Q", 1 << 62)

    def huge_l1(img):
        poke(img, 36, ">I", 0x7fffffff)

    def overlap(img):
        with open(img, "rb") as f:
            rt = be64(f.read(56), 48)
        poke(img, 40, ">Q", rt)

    def bad_cluster_bits(img):
        poke(img, 20, ">I", 40)

    def bad_refcount_order(img):
        poke(img, 96, ">I", 9)

    def snapshot_count(img):
        poke(img, 60, ">I", 1000000)

    bad("b-l1eof.qcow2", l1_past_eof, "past the end of the file")
    bad("b-l2eof.qcow2", l2_past_eof, "past the end of the file")
    bad("b-incompat.qcow2", unknown_incompat, "unsupported incompatible")
    bad("b-size.qcow2", absurd_size, "")
    bad("b-l1huge.qcow2", huge_l1, "L1 table")
    bad("b-overlap.qcow2", overlap, "overlap")
    bad("b-cbits.qcow2", bad_cluster_bits, "cluster_bits")
    bad("b-rorder.qcow2", bad_refcount_order, "refcount_order")
    bad("b-snaps.qcow2", snapshot_count, "snapshots")
    # a backing loop
    a = path("loop-a.qcow2")
    b = path("loop-b.qcow2")
    run("qemu-img", "create", "-f", "qcow2", a, "1M")
    run("qemu-img", "create", "-f", "qcow2", "-b", "loop-a.qcow2", "-F",
        "qcow2", b)
    run("qemu-img", "rebase", "-u", "-b", "loop-b.qcow2", "-F", "qcow2", a)
    p = run(BLKIO, "-r", b, "dump", path("x.raw"), ok=None)
    check(p.returncode == 1 and "loop" in p.stderr,
          "backing loop: rc %d %r" % (p.returncode, p.stderr))
    # corrupt bit: read works, write refused, file untouched
    img = fresh("b-corruptbit.qcow2")
    with open(img, "rb") as f:
        inc = be64(f.read(80), 72)
    poke(img, 72, ">Q", inc | 2)
    h = file_sha(img)
    run(BLKIO, "-r", img, "dump", path("x.raw"))
    p = run(BLKIO, img, "w", "0", "1", "1", ok=None)
    check(p.returncode == 1 and "corrupt" in p.stderr,
          "corrupt bit: write not refused: %r" % p.stderr)
    check(file_sha(img) == h, "corrupt bit: file modified")
    print("ok corrupt bad images", flush=True)


if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
    print("qemu-img/qemu-io not found (install qemu-utils): skipped")
    sys.exit(77)
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK, exist_ok=True)
for g in GROUPS:
    {"ours": test_ours, "theirs": test_theirs, "corrupt": test_corrupt}[g]()
print("%d checks, %d failed" % (checks, failures))
sys.exit(1 if failures else 0)
