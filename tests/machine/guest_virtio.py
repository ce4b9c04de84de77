#!/usr/bin/env python3
"""End-to-end virtio tests: Debian's stock kernel on the software CPU with
the virtio initramfs (scripts/guest-assets --virtio), whose /init runs the
scenarios named by maquina.test= and prints MAQUINA-* lines.

    tests/machine/guest_virtio.py [--vmm maquina|qemu] MAQUINA SOURCE_ROOT BUILD_ROOT TEST

TEST is one of:
  disk         boot 1 (disk-write, disk-ro): the guest makes ext2 on a qcow2
               disk made by 'maquina img create', writes files, syncs and
               powers off; a second, read-only raw disk must refuse writes.
               The host then reads the files out of the image through
               'maquina img convert' + debugfs and through 'qemu-img
               convert' + debugfs; boot 2 (disk-read) sees the same files;
               'qemu-img check' must find the image clean.
  net          DHCP over user-mode networking, a download from an HTTP
               server on the host's loopback (checksum compared), and the
               host reaching a server in the guest through a port forward.
  rng-console  console=hvc0 on --console virtio: the markers arrive over the
               virtio console, a line typed by the host reaches the guest's
               shell; virtio-rng is the guest's hw_random source and feeds
               the kernel.

--vmm qemu runs the same guest under qemu-system-x86_64 -accel tcg (the
guest side checked without maquina's devices); MAQUINA is then still used
for 'img create' and 'img convert'.  Exit status 77 (skip) says why when
maquina lacks an option or a tool is missing.
"""
import hashlib
import http.server
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BOOT_TIMEOUT = 1200  # seconds for one boot under ASan on a loaded host


def log(msg):
    print("guest_virtio: " + msg, flush=True)


def skip(msg):
    log("SKIP: " + msg)
    sys.exit(77)


class Failed(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Guest:
    """One boot: the VMM with the console on a pipe, read as it comes."""

    def __init__(self, argv, name):
        self.name = name
        log("%s: %s" % (name, " ".join(argv)))
        self.start = time.time()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = b""
        self.pos = 0  # expect() searches from here on

    def text(self):
        return self.out.decode(errors="replace").replace("\r", "")

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if r:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return False
            self.out += chunk
        return True

    def expect(self, regex, timeout=BOOT_TIMEOUT):
        """Waits for a line matching regex (after the last match); returns the match."""
        pat = re.compile(regex.encode(), re.M)
        deadline = time.time() + timeout
        while True:
            # complete lines only: a line still arriving could match short
            done = self.out.replace(b"\r", b"")
            done = done[:done.rfind(b"\n") + 1]
            m = pat.search(done, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.time()
            if left <= 0:
                raise Failed("%s: no line matching %r within %d s" % (self.name, regex, timeout))
            if not self._read(min(left, 1.0)) and self.proc.poll() is not None:
                raise Failed("%s: the VMM exited with status %s before a line matching %r" %
                             (self.name, self.proc.returncode, regex))

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout=300):
        """Waits for power-off; the VMM must exit with status 0."""
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._read(1.0)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise Failed("%s: the VMM did not exit within %d s of the guest's last marker" %
                         (self.name, timeout))
        while True:  # what is left in the pipe
            r, _, _ = select.select([self.proc.stdout], [], [], 0)
            chunk = os.read(self.proc.stdout.fileno(), 65536) if r else b""
            if not chunk:
                break
            self.out += chunk
        log("%s: exited with status %d after %.0f s" %
            (self.name, self.proc.returncode, time.time() - self.start))
        if self.proc.returncode != 0:
            raise Failed("%s: the VMM exited with status %d after the guest's power-off, expected 0" %
                         (self.name, self.proc.returncode))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def check_clean(self):
        """The guest's own failures (MAQUINA-FAIL lines) fail the test."""
        fails = re.findall(r"^MAQUINA-FAIL .*$", self.text(), re.M)
        if fails:
            raise Failed("%s: the guest reported: %s" % (self.name, "; ".join(fails)))
        m = re.search(r"^MAQUINA-DONE failures=(\d+)", self.text(), re.M)
        if not m or m.group(1) != "0":
            raise Failed("%s: no 'MAQUINA-DONE failures=0' line" % self.name)


class Runner:
    def __init__(self, vmm, maquina, src, build):
        self.vmm, self.maquina, self.src, self.build = vmm, maquina, src, build
        self.guest_dir = os.path.join(build, "guest")
        self.guests = []

    def prepare(self):
        r = subprocess.run([os.path.join(self.src, "scripts/guest-assets"), "--virtio", self.build])
        if r.returncode != 0:
            raise Failed("scripts/guest-assets --virtio failed (status %d)" % r.returncode)
        if self.vmm == "qemu":
            if not shutil.which("qemu-system-x86_64"):
                skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
            return
        help_text = subprocess.run([self.maquina, "run", "--help"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT).stdout.decode(errors="replace")
        self.help_text = help_text

    def need(self, *options):
        if self.vmm == "qemu":
            return
        missing = [o for o in options if o not in self.help_text]
        if missing:
            skip("'maquina run --help' does not list %s (the virtio options are not in this build)" %
                 ", ".join(missing))

    def boot(self, name, tests, disks=(), net=None, rng=False, console_virtio=False, extra="", cpus=1):
        """disks: dicts with path, format, readonly, cache; net: dict with hostfwd, mac;
        cpus: virtual CPUs (the devices' interrupts then reach more than one)."""
        console = "hvc0" if console_virtio else "ttyS0"
        append = "console=%s quiet maquina.test=%s %s" % (console, ",".join(tests), extra)
        g = self.guest_dir
        if self.vmm == "maquina":
            argv = [self.maquina, "run", "--kernel", os.path.join(g, "vmlinuz"),
                    "--initrd", os.path.join(g, "initramfs-virtio.gz"), "--append", append.strip(),
                    "--memory", "512M", "--no-reboot", "--cpus", str(cpus)]
            for d in disks:
                spec = "path=" + d["path"]
                for k in ("format", "readonly", "cache"):
                    if d.get(k):
                        spec += ",%s=%s" % (k, d[k])
                argv += ["--disk", spec]
            if net is not None:
                spec = "user"
                if net.get("hostfwd"):
                    spec += ",hostfwd=" + net["hostfwd"]
                if net.get("mac"):
                    spec += ",mac=" + net["mac"]
                argv += ["--net", spec]
            if rng:
                argv += ["--rng"]
            if console_virtio:
                argv += ["--console", "virtio"]
        else:
            argv = ["qemu-system-x86_64", "-accel", "tcg", "-M", "pc", "-m", "512", "-smp", str(cpus),
                    "-kernel", os.path.join(g, "vmlinuz"),
                    "-initrd", os.path.join(g, "initramfs-virtio.gz"), "-append", append.strip(),
                    "-display", "none", "-no-reboot", "-monitor", "none"]
            if console_virtio:
                argv += ["-serial", "none", "-device", "virtio-serial-pci", "-chardev", "stdio,id=c0",
                         "-device", "virtconsole,chardev=c0"]
            else:
                argv += ["-serial", "stdio"]
            for i, d in enumerate(disks):
                drive = "file=%s,if=none,id=d%d,format=%s" % (d["path"], i, d.get("format") or "raw")
                if d.get("readonly") == "on":
                    drive += ",readonly=on"
                if d.get("cache") == "none":
                    drive += ",cache=none"
                argv += ["-drive", drive, "-device", "virtio-blk-pci,drive=d%d" % i]
            if net is not None:
                nd = "user,id=n0"
                if net.get("hostfwd"):
                    nd += ",hostfwd=" + net["hostfwd"]
                dev = "virtio-net-pci,netdev=n0"
                if net.get("mac"):
                    dev += ",mac=" + net["mac"]
                argv += ["-netdev", nd, "-device", dev]
            if rng:
                argv += ["-device", "virtio-rng-pci"]
        guest = Guest(argv, name)
        self.guests.append(guest)
        return guest

    def dump_logs(self):
        for g in self.guests:
            g.kill()
            print("---- %s: console output (last 80 lines) ----" % g.name)
            print("\n".join(g.text().splitlines()[-80:]))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def expected_files():
    """The deterministic files disk-write makes (scripts/guest/init-virtio)."""
    seq = "".join("%d\n" % i for i in range(1, 300001)).encode()
    return {"hello.txt": sha256(b"hello from the maquina guest\n"),
            "seq.txt": sha256(seq),
            "dir/nested.txt": sha256(b"nested file\n")}


def guest_sums(guest):
    return dict(re.findall(r"^MAQUINA-FILE (\S+) ([0-9a-f]{64})$", guest.text(), re.M))


def debugfs_sums(raw, names, what):
    sums = {}
    for name in names:
        out = raw + ".file"
        if os.path.exists(out):
            os.unlink(out)
        r = subprocess.run(["debugfs", "-R", "dump /%s %s" % (name, out), raw],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0 or not os.path.exists(out):
            raise Failed("%s: debugfs could not dump /%s: %s" % (what, name, r.stdout.decode(errors="replace")))
        with open(out, "rb") as f:
            sums[name] = sha256(f.read())
        os.unlink(out)
    return sums


def run_cmd(argv, what):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        raise Failed("%s: '%s' failed with status %d: %s" % (what, " ".join(argv), r.returncode, text))
    return text


def test_disk(run, work):
    run.need("--disk")
    for tool in ("debugfs", "qemu-img"):
        if not shutil.which(tool) and not os.path.exists("/sbin/" + tool):
            skip("%s is not installed (scripts/dev deps)" % tool)
    img = os.path.join(work, "disk.qcow2")
    run_cmd([run.maquina, "img", "create", "-f", "qcow2", img, "64M"], "disk")
    # the read-only raw disk: 4 MiB, its first MiB known to the host
    ro = os.path.join(work, "ro.raw")
    ro_data = b"".join(hashlib.sha256(b"maquina ro %d" % i).digest() for i in range(4 << 20 >> 5))
    with open(ro, "wb") as f:
        f.write(ro_data)
    disks = [{"path": img, "format": "qcow2", "cache": "writeback"},
             {"path": ro, "format": "raw", "readonly": "on", "cache": "none"}]

    g = run.boot("boot 1 (disk-write, disk-ro)", ["disk-write", "disk-ro"], disks=disks)
    g.expect(r"^MAQUINA-DISK-WRITE-OK")
    m = g.expect(r"^MAQUINA-VDB-SHA256 (\S+)")
    if m.group(1).decode() != sha256(ro_data[:1 << 20]):
        raise Failed("disk-ro: the guest read %s from vdb's first MiB, expected %s" %
                     (m.group(1).decode(), sha256(ro_data[:1 << 20])))
    g.expect(r"^MAQUINA-DONE")
    g.finish()
    g.check_clean()
    if not re.search(r"^MAQUINA-DISK vdb \d+ sectors ro=1", g.text(), re.M):
        raise Failed("disk-ro: /sys/block/vdb/ro is not 1 in the guest")
    with open(ro, "rb") as f:
        if f.read() != ro_data:
            raise Failed("disk-ro: the read-only image changed")

    sums = guest_sums(g)
    want = expected_files()
    names = ["hello.txt", "seq.txt", "random.bin", "dir/nested.txt"]
    for name in names:
        if name not in sums:
            raise Failed("boot 1: the guest printed no sha256 for %s" % name)
        if name in want and sums[name] != want[name]:
            raise Failed("boot 1: the guest read back %s with sha256 %s, expected %s" %
                         (name, sums[name], want[name]))
    log("boot 1: the guest wrote %s" % ", ".join(names))

    # the host's view, through maquina's block layer and through qemu-img
    for tool, argv in (("maquina img convert", [run.maquina, "img", "convert", "-O", "raw"]),
                       ("qemu-img convert", ["qemu-img", "convert", "-O", "raw"])):
        raw = os.path.join(work, "host.raw")
        if os.path.exists(raw):
            os.unlink(raw)
        run_cmd(argv + [img, raw], tool)
        host = debugfs_sums(raw, names, tool)
        for name in names:
            if host[name] != sums[name]:
                raise Failed("%s + debugfs: /%s has sha256 %s in the image, the guest wrote %s" %
                             (tool, name, host[name], sums[name]))
        os.unlink(raw)
        log("%s + debugfs: every file has the contents the guest wrote" % tool)

    # boot 2 with two vCPUs: completions and their interrupts reach either
    g2 = run.boot("boot 2 (disk-read)", ["disk-read"], disks=disks[:1], cpus=2)
    g2.expect(r"^MAQUINA-DISK-READ-OK")
    g2.expect(r"^MAQUINA-DONE")
    g2.finish()
    g2.check_clean()
    sums2 = guest_sums(g2)
    if sums2 != sums:
        raise Failed("boot 2: the guest read %s, boot 1 wrote %s" % (sums2, sums))
    log("boot 2: the guest read back the same files")

    text = run_cmd(["qemu-img", "check", img], "qemu-img check")
    if "No errors were found" not in text:
        raise Failed("qemu-img check: %s" % text)
    log("qemu-img check: the image is clean")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/file":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.server.payload)))
        self.end_headers()
        self.wfile.write(self.server.payload)
        self.server.served += 1

    def log_message(self, fmt, *args):
        log("http server: " + fmt % args)


def test_net(run, work):
    run.need("--net")
    payload = os.urandom(2 << 20)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.payload, srv.served = payload, 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    http_port = srv.server_address[1]
    fwd_port = free_port()
    mac = "52:54:00:4d:51:01"
    token = os.urandom(6).hex()
    try:
        g = run.boot("net", ["net"], net={"hostfwd": "tcp:127.0.0.1:%d-:8080" % fwd_port, "mac": mac},
                     extra="maquina.port=%d maquina.gport=8080" % http_port, cpus=2)
        m = g.expect(r"^MAQUINA-NET-MAC (\S+)")
        if m.group(1).decode() != mac:
            raise Failed("net: the guest's eth0 has MAC %s, --net said %s" % (m.group(1).decode(), mac))
        m = g.expect(r"^MAQUINA-(NET-ADDR \S+|FAIL .*)$")
        if not m.group(1).startswith(b"NET-ADDR 10.0.2."):
            raise Failed("net: DHCP: %s" % m.group(1).decode())
        m = g.expect(r"^MAQUINA-(NET-DOWNLOAD (\d+) ([0-9a-f]+)|FAIL .*)$")
        if not m.group(1).startswith(b"NET-DOWNLOAD"):
            raise Failed("net: download: %s" % m.group(1).decode())
        if int(m.group(2)) != len(payload) or m.group(3).decode() != sha256(payload):
            raise Failed("net: the guest downloaded %s bytes with sha256 %s; the server sent %d, %s" %
                         (m.group(2).decode(), m.group(3).decode(), len(payload), sha256(payload)))
        log("net: the guest downloaded %d bytes from 127.0.0.1:%d, sha256 matches" % (len(payload), http_port))
        g.expect(r"^MAQUINA-NET-LISTENING")
        reply = b""
        deadline = time.time() + 120
        while time.time() < deadline:
            # the forward accepts before the guest's nc listens: retry
            try:
                with socket.create_connection(("127.0.0.1", fwd_port), timeout=60) as s:
                    s.sendall(b"hello-%s\n" % token.encode())
                    s.settimeout(60)
                    reply = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        reply += chunk
            except OSError as e:
                log("net: connecting to 127.0.0.1:%d: %s (retrying)" % (fwd_port, e))
            if reply:
                break
            time.sleep(1)
        want = "maquina-guest-reply hello-%s" % token
        if reply.decode(errors="replace").strip() != want:
            raise Failed("net: through the port forward 127.0.0.1:%d the guest answered %r, expected %r" %
                         (fwd_port, reply, want))
        log("net: the guest's server answered through the port forward 127.0.0.1:%d" % fwd_port)
        g.expect(r"^MAQUINA-NET-SERVED hello-%s" % token)
        g.expect(r"^MAQUINA-DONE")
        g.finish()
        g.check_clean()
    finally:
        srv.shutdown()


def test_rng_console(run, work):
    run.need("--rng")
    # without --console (not in this build) the rng half still runs, on
    # the serial console, and the test then reports a skip
    has_console = run.vmm == "qemu" or "--console" in run.help_text
    token = os.urandom(6).hex()
    g = run.boot("rng-console" if has_console else "rng", ["rng", "console"] if has_console else ["rng"],
                 rng=True, console_virtio=has_console)
    m = g.expect(r"^MAQUINA-RNG-CURRENT (.*)$")
    if not m.group(1).startswith(b"virtio_rng."):
        raise Failed("rng: the guest's hw_random source is %r, not virtio_rng.N" % m.group(1).decode())
    g.expect(r"^MAQUINA-RNG-OK")
    log("rng: hw_random uses virtio_rng and /dev/hwrng gives bytes")
    if has_console:
        m = g.expect(r"^MAQUINA-CONSOLES (.*)$")
        if not m.group(1).startswith(b"hvc0"):
            raise Failed("console: the guest's consoles are %r, expected hvc0 first" % m.group(1).decode())
        g.expect(r"^MAQUINA-CONSOLE-READY")
        g.send("typed-%s" % token)
        g.expect(r"^MAQUINA-CONSOLE-ECHO typed-%s" % token, timeout=300)
        log("console: the markers came over hvc0 and a typed line reached the guest")
    g.expect(r"^MAQUINA-DONE")
    g.finish()
    g.check_clean()
    if not has_console:
        skip("rng passed; the console half did not run: 'maquina run --help' does not list --console")


TESTS = {"disk": test_disk, "net": test_net, "rng-console": test_rng_console}


def main():
    args = sys.argv[1:]
    vmm = "maquina"
    if len(args) >= 2 and args[0] == "--vmm":
        vmm = args[1]
        args = args[2:]
    if len(args) != 4 or args[3] not in TESTS or vmm not in ("maquina", "qemu"):
        sys.exit(__doc__)
    maquina, src, build, test = args
    run = Runner(vmm, maquina, src, build)
    work = tempfile.mkdtemp(prefix="virtio-%s-" % test, dir=build)
    ok = False
    try:
        run.prepare()
        TESTS[test](run, work)
        ok = True
    except Failed as e:
        run.dump_logs()
        log("FAIL: %s" % e)
    finally:
        for g in run.guests:
            g.kill()
        shutil.rmtree(work, ignore_errors=True)
    if ok:
        log("%s (%s): PASS" % (test, vmm))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
