#!/usr/bin/env python3
"""Helper of scripts/farm/kernels.sh: the kernel farm.

Sub-commands (kernels.sh calls them; each prints what it does on stderr):

  resolve KERNEL      read the suite's Packages.xz indices (suite, suite-updates, suite-security),
                      pick the newest kernel and the userland packages, write the lock
                      <cache>/locks/KERNEL.json (nothing else); prints the lock path
  fetch KERNEL        resolve (unless locked) and download every .deb of the lock into
                      <cache>/debs/ (checked against the index's SHA256); downloads nothing when
                      everything is there
  prepare KERNEL      unpack the kernel image and the userland (staging dir)
  run KERNEL PAYLOAD OUT   build the initramfs, boot qemu, collect OUT
  list                the KERNEL names with the locked versions

The cache is ${XDG_CACHE_HOME:-$HOME/.cache}/progload/farm (FARM_CACHE overrides it):
  indices/SUITE/ARCH/*.Packages.xz   the indices (InRelease-verified with gpgv when possible)
  locks/KERNEL.json                  what KERNEL means: kernel package + userland packages, versions
  debs/NAME_VERSION_ARCH.deb         the downloads, keyed by version
  kernels/PKG_VERSION/               boot-image (what qemu -kernel gets), config
  userland/SUITE-ARCH-HASH/          root/ (staging dir), info.json (executable counts)
  runs/KERNEL.json                   what the last run saw (uname -r, /proc/version)
"""

import base64
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

MIRROR = os.environ.get("FARM_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("FARM_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
KEYRING = os.environ.get("FARM_KEYRING", "/usr/share/keyrings/debian-archive-keyring.gpg")

# KERNEL -> (suite, debian arch, kernel version prefix, flavour, usrmerged)
KERNELS = {
    "x86_64-5.10": ("bullseye", "amd64", "5.10", "amd64", False),
    "x86_64-6.1": ("bookworm", "amd64", "6.1", "amd64", True),
    "x86_64-6.12": ("trixie", "amd64", "6.12", "amd64", True),
    "aarch64-5.10": ("bullseye", "arm64", "5.10", "arm64", False),
    "aarch64-6.1": ("bookworm", "arm64", "6.1", "arm64", True),
    "aarch64-6.12": ("trixie", "arm64", "6.12", "arm64", True),
    "riscv64-6.12": ("trixie", "riscv64", "6.12", "riscv64", True),
}

# The userland: these packages and the lib* packages they depend on (recursively).
USERLAND = [
    "busybox-static", "libc6", "libc-bin", "coreutils", "bash", "dash", "perl-base",
    "util-linux", "mount", "bsdutils", "findutils", "grep", "sed", "tar", "gzip", "bzip2",
    "xz-utils", "diffutils", "procps", "debianutils", "hostname", "ncurses-bin", "less",
    "sysvinit-utils", "kmod", "cpio", "file", "psmisc",
]
# Packages that must be there (the others are skipped with a note when a suite lacks them).
REQUIRED = {"busybox-static", "libc6", "coreutils", "bash", "perl-base"}
# Dependencies never followed (big, or only maintainer-script machinery).
SKIP_DEPS = {"libpam-runtime", "libpam-modules", "libpam-modules-bin", "libc-l10n",
             "libperl5.32", "libperl5.36", "libperl5.40", "libgcc1"}
# What is left out of the staging dir (not needed to exec anything).
DROP_PREFIXES = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
                 "usr/share/lintian/", "usr/share/bug/", "usr/share/bash-completion/",
                 "usr/share/zsh/", "usr/share/fish/", "usr/share/menu/", "usr/share/i18n/",
                 "usr/lib/systemd/", "lib/systemd/", "etc/init.d/", "etc/cron.")
MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Bump when the staging/cpio layout changes, so caches of an older layout are not reused.
LAYOUT = "4"


def log(*a):
    print("farm:", *a, file=sys.stderr, flush=True)


def die(*a):
    log(*a)
    sys.exit(1)


def cache_dir():
    c = os.environ.get("FARM_CACHE")
    if not c:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        c = os.path.join(base, "progload", "farm")
    os.makedirs(c, exist_ok=True)
    return c


# ---------------------------------------------------------------- Debian version comparison

def _order(c):
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a, b):
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split(v):
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    if "-" in rest:
        up, _, rev = rest.rpartition("-")
    else:
        up, rev = rest, "0"
    return int(epoch or 0), up, rev


def vercmp(a, b):
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return ea - eb
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


# ---------------------------------------------------------------- HTTP, indices

def http_get(url, dest, expect_sha256=None, expect_size=None):
    """Download url to dest (atomically); returns bytes written."""
    tmp = dest + ".part"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    h = hashlib.sha256()
    n = 0
    for attempt in range(4):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "progload-farm/1"})
            with urllib.request.urlopen(req, timeout=60) as r, open(tmp, "wb") as f:
                h = hashlib.sha256()
                n = 0
                while True:
                    b = r.read(1 << 20)
                    if not b:
                        break
                    f.write(b)
                    h.update(b)
                    n += len(b)
            break
        except Exception as e:  # noqa: BLE001 - network errors of all kinds are retried
            if attempt == 3:
                raise
            log(f"retrying {url}: {e}")
            time.sleep(2 + 3 * attempt)
    if expect_size is not None and n != int(expect_size):
        os.unlink(tmp)
        die(f"{url}: {n} bytes, the index says {expect_size}")
    if expect_sha256 and h.hexdigest() != expect_sha256:
        os.unlink(tmp)
        die(f"{url}: sha256 {h.hexdigest()}, the index says {expect_sha256}")
    os.replace(tmp, dest)
    return n


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def index_sources(suite):
    return [(MIRROR, suite), (MIRROR, suite + "-updates"), (SECURITY, suite + "-security")]


def fetch_index(base, dist, arch, stats):
    """Returns the path of dist's main/binary-ARCH/Packages.xz in the cache (None if the dist has
    none). Downloaded once; FARM_REFRESH=1 downloads again. Verified against the gpgv-checked
    InRelease when gpgv and the keyring exist (FARM_INSECURE=1 skips the check)."""
    d = os.path.join(cache_dir(), "indices", dist, arch)
    px = os.path.join(d, "Packages.xz")
    ok = os.path.join(d, "OK")
    if os.path.exists(ok) and os.environ.get("FARM_REFRESH") != "1":
        return px if os.path.exists(px) else None
    os.makedirs(d, exist_ok=True)
    rel_url = f"{base}/dists/{dist}/InRelease"
    inrel = os.path.join(d, "InRelease")
    try:
        stats["bytes"] += http_get(rel_url, inrel)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            log(f"{rel_url}: 404, no such dist")
            open(ok, "w").close()
            return None
        raise
    text = open(inrel, encoding="utf-8", errors="replace").read()
    verified = False
    if os.environ.get("FARM_INSECURE") != "1" and shutil.which("gpgv") and os.path.exists(KEYRING):
        r = subprocess.run(["gpgv", "--keyring", KEYRING, inrel], capture_output=True, text=True)
        if r.returncode != 0:
            die(f"{rel_url}: gpgv failed:\n{r.stderr}")
        verified = True
    want = f"main/binary-{arch}/Packages.xz"
    m = re.search(r"^SHA256:\n((?: .*\n)+)", text, re.M)
    sha = size = None
    if m:
        for line in m.group(1).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == want:
                sha, size = parts[0], parts[1]
    if sha is None:
        log(f"{dist} has no {want}")
        if os.path.exists(px):
            os.unlink(px)
        open(ok, "w").close()
        return None
    url = f"{base}/dists/{dist}/{want}"
    log(f"downloading {url} ({int(size) / 1e6:.1f} MB{', InRelease gpgv-verified' if verified else ''})")
    stats["bytes"] += http_get(url, px, sha, size)
    open(ok, "w").close()
    return px


def parse_index(px, base, into):
    """into: name -> list of stanza dicts (with '_base' = archive root)."""
    with lzma.open(px, "rt", encoding="utf-8", errors="replace") as f:
        data = f.read()
    for block in data.split("\n\n"):
        if not block.strip():
            continue
        st = {}
        key = None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t":
                if key:
                    st[key] += "\n" + line
                continue
            k, _, v = line.partition(":")
            key = k
            st[k] = v.strip()
        if "Package" in st and "Filename" in st:
            st["_base"] = base
            into.setdefault(st["Package"], []).append(st)


def load_indices(suite, arch, stats):
    pkgs = {}
    for base, dist in index_sources(suite):
        px = fetch_index(base, dist, arch, stats)
        if px:
            parse_index(px, base, pkgs)
    if not pkgs:
        die(f"no package index for {suite}/{arch}")
    return pkgs


def newest(stanzas):
    best = None
    for s in stanzas:
        if best is None or vercmp(s["Version"], best["Version"]) > 0:
            best = s
    return best


_reach = {}


def reachable(st):
    """HEAD of the .deb: some indices list files that the mirror does not serve (seen: bullseye-security
    arm64 kernels after the end of bullseye LTS answer 404)."""
    url = st["_base"] + "/" + st["Filename"]
    if url not in _reach:
        ok = False
        for attempt in range(3):
            try:
                req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "progload-farm/1"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    ok = r.status == 200
                break
            except urllib.error.HTTPError as e:
                if e.code in (403, 404, 410):
                    break
                time.sleep(2)
            except Exception:  # noqa: BLE001
                time.sleep(2)
        _reach[url] = ok
    return _reach[url]


def newest_reachable(stanzas, skipped):
    """The newest of stanzas (kind of (stanza, extra) pairs or stanzas) that the mirror serves."""
    import functools
    items = sorted(stanzas, key=functools.cmp_to_key(
        lambda a, b: vercmp((a[0] if isinstance(a, tuple) else a)["Version"],
                            (b[0] if isinstance(b, tuple) else b)["Version"])), reverse=True)
    for it in items:
        st = it[0] if isinstance(it, tuple) else it
        if reachable(st):
            return it
        skipped.append(f"{st['Package']} {st['Version']} ({st['_base']}/{st['Filename']}: not served)")
    return None


def dep_names(field):
    """First alternative of each dependency (name only)."""
    out = []
    for group in field.split(","):
        group = group.strip()
        if not group:
            continue
        alt = group.split("|")[0].strip()
        name = re.split(r"[\s(\[<]", alt, 1)[0].split(":")[0]
        if name:
            out.append(name)
    return out


def entry(st):
    return {
        "package": st["Package"],
        "version": st["Version"],
        "arch": st.get("Architecture", ""),
        "url": st["_base"] + "/" + st["Filename"],
        "file": os.path.basename(st["Filename"]),
        "size": int(st.get("Size", 0)),
        "sha256": st.get("SHA256", ""),
    }


# ---------------------------------------------------------------- resolve / fetch

def lock_path(kernel):
    return os.path.join(cache_dir(), "locks", kernel + ".json")


def kernel_spec(kernel):
    if kernel not in KERNELS:
        die(f"unknown KERNEL {kernel!r}; one of: {' '.join(KERNELS)}")
    return KERNELS[kernel]


def resolve(kernel, stats=None):
    suite, arch, kver, flavour, merged = kernel_spec(kernel)
    lp = lock_path(kernel)
    if os.path.exists(lp) and os.environ.get("FARM_REFRESH") != "1":
        return json.load(open(lp))
    stats = stats if stats is not None else {"bytes": 0}
    pkgs = load_indices(suite, arch, stats)
    # linux-image-<ABI>-<flavour>: ABI is <kver>.<n>... with no '-' except a trailing -<abi number>
    # (bullseye/bookworm: 5.10.0-35, 6.1.0-41; trixie: 6.12.48+deb13). That leaves out -rt-, -cloud-,
    # -dbg, -unsigned, -16k, and 6.1 backports to bullseye (6.1.0-0.deb11.N).
    rx = re.compile(r"^linux-image-(" + re.escape(kver) + r"\.[0-9][0-9A-Za-z.+~]*(?:-[0-9]+)?)-"
                    + re.escape(flavour) + r"$")
    cands = []
    for name, sts in pkgs.items():
        m = rx.match(name)
        if m:
            cands += [(st, m.group(1) + "-" + flavour) for st in sts]
    if not cands:
        die(f"no linux-image-{kver}.*-{flavour} in {suite}/{arch}")
    skipped = []
    found = newest_reachable(cands, skipped)
    if not found:
        die(f"no linux-image-{kver}.*-{flavour} of {suite}/{arch} can be downloaded: {skipped}")
    best, abi = found
    kentry = entry(best)
    kentry["abi"] = abi

    chosen = {}
    missing = []
    todo = list(USERLAND)
    while todo:
        name = todo.pop(0)
        if name in chosen or name in SKIP_DEPS:
            continue
        if name not in pkgs:
            if name in REQUIRED:
                die(f"{suite}/{arch} has no {name}")
            missing.append(name)
            continue
        st = newest_reachable(pkgs[name], skipped)
        if st is None:
            die(f"no version of {name} in {suite}/{arch} can be downloaded: {skipped}")
        chosen[name] = st
        for field in ("Pre-Depends", "Depends"):
            for d in dep_names(st.get(field, "")):
                if d.startswith("lib") and d not in chosen and not d.endswith("-dev"):
                    todo.append(d)
    lock = {
        "kernel_name": kernel,
        "suite": suite,
        "arch": arch,
        "usrmerge": merged,
        "kernel": kentry,
        "userland": [entry(chosen[n]) for n in sorted(chosen)],
        "not_in_suite": missing,
        "skipped_not_served": skipped,
        "resolved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(os.path.dirname(lp), exist_ok=True)
    with open(lp + ".tmp", "w") as f:
        json.dump(lock, f, indent=1)
    os.replace(lp + ".tmp", lp)
    log(f"{kernel}: {kentry['package']} {kentry['version']}; {len(lock['userland'])} userland packages"
        + (f"; not in {suite}: {' '.join(missing)}" if missing else ""))
    for sk in skipped:
        log("  skipped:", sk)
    return lock


def deb_path(e):
    return os.path.join(cache_dir(), "debs", e["file"])


def cmd_fetch(kernel):
    t0 = time.time()
    stats = {"bytes": 0}
    lock = resolve(kernel, stats)
    all_debs = [lock["kernel"]] + lock["userland"]
    got = 0
    for e in all_debs:
        p = deb_path(e)
        if os.path.exists(p) and os.path.getsize(p) == e["size"]:
            continue
        log(f"downloading {e['file']} ({e['size'] / 1e6:.1f} MB)")
        got += 1
        stats["bytes"] += http_get(e["url"], p, e["sha256"] or None, e["size"])
    total = sum(e["size"] for e in all_debs)
    log(f"{kernel}: {len(all_debs)} .debs, {total / 1e6:.1f} MB (kernel {lock['kernel']['size'] / 1e6:.1f} MB);"
        f" downloaded now: {got} files, {stats['bytes'] / 1e6:.1f} MB incl. indices, {time.time() - t0:.1f}s")
    return lock


# ---------------------------------------------------------------- .deb unpacking

def deb_members(path):
    """Yields (name, bytes) of the ar archive."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            die(f"{path}: not a .deb")
        while True:
            hdr = f.read(60)
            if len(hdr) < 60:
                return
            name = hdr[:16].decode().strip().rstrip("/")
            size = int(hdr[48:58].decode().strip())
            data = f.read(size)
            if size % 2:
                f.read(1)
            yield name, data


def deb_data_tar(path):
    for name, data in deb_members(path):
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
                return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
            return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    die(f"{path}: no data.tar")


def norm(name):
    n = name
    while n.startswith("./"):
        n = n[2:]
    return n.lstrip("/").rstrip("/")


def map_path(p, merged):
    if merged:
        top, _, rest = p.partition("/")
        if top in MERGED_DIRS:
            return "usr/" + top + ("/" + rest if rest else "")
    return p


def dropped(p):
    return any(p.startswith(x) or p + "/" == x for x in DROP_PREFIXES)


def unpack_deb(path, root, merged, notes):
    tf = deb_data_tar(path)
    links = []
    for m in tf.getmembers():
        p = map_path(norm(m.name), merged)
        if not p or dropped(p):
            continue
        dest = os.path.join(root, p)
        if m.isdir():
            if os.path.islink(dest):
                continue
            os.makedirs(dest, exist_ok=True)
            os.chmod(dest, m.mode & 0o7777 | 0o700)
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.lexists(dest):
            if os.path.isdir(dest) and not os.path.islink(dest):
                notes.append(f"{os.path.basename(path)}: {p} is a directory already; skipped")
                continue
            notes.append(f"{os.path.basename(path)}: overwrites {p}")
            os.unlink(dest)
        if m.issym():
            os.symlink(m.linkname, dest)
        elif m.islnk():
            links.append((m, p, dest))
        elif m.isfile():
            with tf.extractfile(m) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(dest, m.mode & 0o7777)
        # device nodes, fifos: none in these packages
    for m, p, dest in links:
        target = os.path.join(root, map_path(norm(m.linkname), merged))
        if os.path.exists(target):
            shutil.copy2(target, dest)  # the cpio gets a plain copy
        else:
            notes.append(f"hard link {p} -> {m.linkname}: target missing")


def is_exec_file(path):
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        return None
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        return "elf"
    if head[:2] == b"#!":
        return "script"
    return "other"


def count_execs(root):
    """Executable regular files in /usr/bin /bin /usr/sbin /sbin, each directory once (usrmerge)."""
    seen = set()
    counts = {"elf": 0, "script": 0, "other": 0}
    for d in ("usr/bin", "bin", "usr/sbin", "sbin"):
        full = os.path.join(root, d)
        if os.path.islink(full):
            continue  # /bin -> usr/bin: counted as usr/bin
        if not os.path.isdir(full):
            continue
        for n in os.listdir(full):
            p = os.path.join(full, n)
            k = is_exec_file(p)
            if k and p not in seen:
                seen.add(p)
                counts[k] += 1
    counts["total"] = sum(counts.values())
    return counts


# ---------------------------------------------------------------- cpio

class Cpio:
    """cpio newc writer."""

    def __init__(self, out):
        self.out = out
        self.ino = 1000
        self.n = 0

    def _hdr(self, name, mode, size, nlink=1, rdev=(0, 0), mtime=0):
        self.ino += 1
        nb = name.encode() + b"\0"
        h = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], len(nb), 0))
        b = h.encode() + nb
        b += b"\0" * (-len(b) % 4)
        self.out.write(b)
        self.n += 1

    def add(self, name, mode, data=b"", rdev=(0, 0), mtime=0):
        self._hdr(name, mode, len(data), 2 if stat.S_ISDIR(mode) else 1, rdev, mtime)
        if data:
            self.out.write(data)
            self.out.write(b"\0" * (-len(data) % 4))

    def add_tree(self, root, prefix=""):
        """Adds root's contents (dirs before their contents), as root:root."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            base = prefix + ("" if rel == "." else rel)
            if base:
                st = os.lstat(dirpath)
                self.add(base, stat.S_IFDIR | (st.st_mode & 0o7777), mtime=int(st.st_mtime))
            names = sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))])
            for n in names:
                p = os.path.join(dirpath, n)
                name = (base + "/" if base else "") + n
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    self.add(name, stat.S_IFLNK | 0o777, os.readlink(p).encode())
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        self.add(name, stat.S_IFREG | (st.st_mode & 0o7777), f.read(), mtime=int(st.st_mtime))
            # os.walk does not descend into symlinked dirs (followlinks=False)

    def close(self):
        self.add("TRAILER!!!", 0)
        self.out.write(b"\0" * (-self.out.tell() % 512) if hasattr(self.out, "tell") else b"")


def compress_mode():
    m = os.environ.get("FARM_COMPRESS", "none")
    if m not in ("gzip", "none"):
        die("FARM_COMPRESS is gzip or none")
    return m


def write_cpio(path, fill):
    """fill(cpio) adds the entries; the file is gzip -1 or plain (FARM_COMPRESS)."""
    tmp = path + ".tmp"
    if compress_mode() == "gzip":
        raw = io.BytesIO()
        c = Cpio(raw)
        fill(c)
        c.close()
        with open(tmp, "wb") as f:
            f.write(gzip.compress(raw.getvalue(), compresslevel=1, mtime=0))
    else:
        with open(tmp, "wb") as f:
            c = Cpio(f)
            fill(c)
            c.close()
    os.replace(tmp, path)


# ---------------------------------------------------------------- prepare

def kernel_dir(lock):
    k = lock["kernel"]
    return os.path.join(cache_dir(), "kernels", f"{k['package']}_{k['version'].replace(':', '%3a')}")


def boot_image(lock):
    """Unpacks vmlinuz + config from the kernel .deb, and returns the image qemu boots:
    x86_64 bzImage as is; arm64/riscv64 the raw Image (gunzipped; EFI zboot unpacked)."""
    kd = kernel_dir(lock)
    img = os.path.join(kd, "boot-image")
    if os.path.exists(img):
        for n in ("vmlinuz", "vmlinux"):
            if os.path.exists(os.path.join(kd, n)):
                os.unlink(os.path.join(kd, n))
        return img
    os.makedirs(kd, exist_ok=True)
    deb = deb_path(lock["kernel"])
    if not os.path.exists(deb):
        die(f"{deb} missing: run kernels.sh fetch {lock['kernel_name']}")
    t0 = time.time()
    tf = deb_data_tar(deb)
    vml = None
    for m in tf:
        p = norm(m.name)
        if re.match(r"boot/(vmlinuz|vmlinux|config)-", p) and m.isfile():
            dest = os.path.join(kd, os.path.basename(p).split("-", 1)[0])
            with tf.extractfile(m) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            if not p.startswith("boot/config"):
                vml = dest
    if not vml:
        die(f"{deb}: no boot/vmlinuz-*")
    data = open(vml, "rb").read()
    if lock["arch"] != "amd64":
        data = unpack_image(data, kd)
    with open(img + ".tmp", "wb") as f:
        f.write(data)
    os.replace(img + ".tmp", img)
    os.unlink(vml)  # boot-image is all that is booted
    log(f"kernel image {img} ({len(data) / 1e6:.1f} MB, {time.time() - t0:.1f}s)")
    return img


def modules(lock):
    """The kernel modules the guests load (Debian builds binfmt_misc as a module), unpacked
    from the kernel .deb once and decompressed: {name: path} in the kernel's cache dir."""
    kd = kernel_dir(lock)
    md = os.path.join(kd, "modules")
    wanted = {"binfmt_misc": "kernel/fs/binfmt_misc.ko"}
    if not os.path.isdir(md):
        deb = deb_path(lock["kernel"])
        if not os.path.exists(deb):
            die(f"{deb} missing: run kernels.sh fetch {lock['kernel_name']}")
        tmp = md + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        tf = deb_data_tar(deb)
        for m in tf:
            p = norm(m.name)
            for name, rel in wanted.items():
                mm = re.match(r"(usr/)?lib/modules/[^/]+/" + re.escape(rel) + r"(\.xz|\.zst)?$", p)
                if mm and m.isfile():
                    with tf.extractfile(m) as src:
                        data = src.read()
                    if mm.group(2) == ".xz":
                        data = lzma.decompress(data)
                    elif mm.group(2) == ".zst":
                        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
                    with open(os.path.join(tmp, name + ".ko"), "wb") as f:
                        f.write(data)
        os.replace(tmp, md)
    return {n[:-3]: os.path.join(md, n) for n in sorted(os.listdir(md))}


def unpack_image(data, kd):
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:2] == b"MZ" and data[4:8] == b"zimg":
        # EFI zboot: payload offset/size at 8/12, compression type at 24
        off, size = int.from_bytes(data[8:12], "little"), int.from_bytes(data[12:16], "little")
        comp = data[24:32].rstrip(b"\0").decode()
        payload = data[off:off + size]
        if comp == "gzip":
            return gzip.decompress(payload)
        if comp == "zstd":
            return subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, check=True).stdout
        if comp in ("xzkern", "xz"):
            return lzma.decompress(payload)
        die(f"zboot compression {comp} not handled")
    return data


ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": "farm\n",
    "etc/hosts": "127.0.0.1 localhost farm\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}


def userland(lock):
    """The staging dir of lock's suite/arch (unpacked once, cached by the package versions).
    Returns (root, info: exec counts, unpack time, notes)."""
    key = hashlib.sha256(json.dumps([LAYOUT, lock["usrmerge"],
                                     [(e["package"], e["version"]) for e in lock["userland"]]]).encode()).hexdigest()[:12]
    ud = os.path.join(cache_dir(), "userland", f"{lock['suite']}-{lock['arch']}-{key}")
    root = os.path.join(ud, "root")
    info_p = os.path.join(ud, "info.json")
    if os.path.exists(info_p):
        return root, json.load(open(info_p))
    t0 = time.time()
    # Only one userland per suite-arch is kept: the others are of older package versions.
    for old in os.listdir(os.path.dirname(ud)) if os.path.isdir(os.path.dirname(ud)) else []:
        if old.startswith(f"{lock['suite']}-{lock['arch']}-"):
            shutil.rmtree(os.path.join(os.path.dirname(ud), old))
    os.makedirs(root)
    merged = lock["usrmerge"]
    if merged:
        os.makedirs(os.path.join(root, "usr"))
        for d in ("bin", "sbin", "lib"):
            os.makedirs(os.path.join(root, "usr", d))
            os.symlink("usr/" + d, os.path.join(root, d))
        if lock["arch"] == "amd64":
            os.makedirs(os.path.join(root, "usr", "lib64"))
            os.symlink("usr/lib64", os.path.join(root, "lib64"))
    notes = []
    for e in lock["userland"]:
        p = deb_path(e)
        if not os.path.exists(p):
            die(f"{p} missing: run kernels.sh fetch {lock['kernel_name']}")
        unpack_deb(p, root, merged, notes)
    # What maintainer scripts / base-files / base-passwd would have made.
    sh = os.path.join(root, "bin", "sh")
    if not os.path.lexists(sh):
        os.symlink("dash", sh)
    for d in ("proc", "sys", "dev", "tmp", "run", "root", "out", "mnt", "var/tmp", "etc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    for p, text in ETC_FILES.items():
        fp = os.path.join(root, p)
        if not os.path.exists(fp):
            with open(fp, "w") as f:
                f.write(text)
    t_unpack = time.time() - t0
    counts = count_execs(root)
    size = 0
    for dp, _dn, fns in os.walk(root):
        size += sum(os.lstat(os.path.join(dp, n)).st_size for n in fns)
    info = {"execs": counts, "unpack_s": round(t_unpack, 2), "bytes": size, "notes": notes}
    with open(info_p, "w") as f:
        json.dump(info, f, indent=1)
    log(f"userland {ud}: unpacked in {t_unpack:.1f}s, {size / 1e6:.1f} MB, executables {counts}")
    for n in notes:
        log("  note:", n)
    return root, info


def cmd_prepare(kernel):
    lock = resolve(kernel)
    img = boot_image(lock)
    root, info = userland(lock)
    print(json.dumps({"image": img, "root": root, **info}))


# ---------------------------------------------------------------- run

INIT = r"""#!/bin/busybox sh
# /init of the progload kernel farm (generated by scripts/farm/farm.py)
B=/bin/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C SHELL=/bin/sh USER=root LOGNAME=root
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
for m in /modules/*.ko; do [ -e "$m" ] && $B insmod "$m" 2>/dev/null; done
$B mount -t devtmpfs devtmpfs /dev 2>/dev/null
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts devpts /dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs /dev/shm
$B mount -t tmpfs -o mode=1777 tmpfs /tmp
$B mount -t tmpfs -o mode=755 tmpfs /run
[ -e /dev/fd ] || $B ln -s /proc/self/fd /dev/fd
$B hostname farm
echo "@@FARM-INIT @NONCE@ uptime=$($B cut -d' ' -f1 /proc/uptime)"
export OUT=/out FARM_KERNEL=@KERNEL@
$B mkdir -p /out
cd /payload
if [ -x /payload/run.sh ]; then
    ( /payload/run.sh </dev/null; echo $? >/tmp/.farm-rc ) 2>&1 | $B tee /out/run.log
elif [ -f /payload/run.sh ]; then
    ( $B sh /payload/run.sh </dev/null; echo $? >/tmp/.farm-rc ) 2>&1 | $B tee /out/run.log
else
    echo "no /payload/run.sh" | $B tee /out/run.log; echo 127 >/tmp/.farm-rc
fi
rc=$($B cat /tmp/.farm-rc 2>/dev/null || echo 255)
cd /
echo "@@FARM-DONE @NONCE@ rc=$rc uptime=$($B cut -d' ' -f1 /proc/uptime)"
echo "@@FARM-BEGIN @NONCE@"
# busybox 1.30 (bullseye) has no base64 applet: uuencode -m then, without its begin/==== lines
if echo | $B base64 >/dev/null 2>&1; then
    $B tar -cf - out | $B gzip -c | $B base64
else
    $B tar -cf - out | $B gzip -c | $B uuencode -m farm | $B sed '1d;$d'
fi
echo "@@FARM-END @NONCE@ rc=$rc"
$B sync
$B poweroff -f
echo o > /proc/sysrq-trigger
"""


def qemu_cmd(lock, image, initrd, append_extra):
    arch = lock["arch"]
    mem = os.environ.get("FARM_MEM", "2G")
    smp = os.environ.get("FARM_SMP", "2")
    accel = os.environ.get("FARM_ACCEL", "tcg")
    common = ["-m", mem, "-smp", smp, "-nographic", "-monitor", "none", "-serial", "stdio",
              "-no-reboot", "-kernel", image, "-initrd", initrd, "-nodefaults"]
    if arch == "amd64":
        cpu = os.environ.get("FARM_CPU") or ("host" if accel == "kvm" else "max,la57=off")
        cons = "ttyS0"
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", accel, "-cpu", cpu]
    elif arch == "arm64":
        cpu = os.environ.get("FARM_CPU") or "max,pauth-impdef=on"
        cons = "ttyAMA0"
        cmd = ["qemu-system-aarch64", "-machine", "virt", "-accel", "tcg", "-cpu", cpu]
    elif arch == "riscv64":
        bios = os.environ.get("FARM_OPENSBI", "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin")
        cons = "ttyS0"
        cmd = ["qemu-system-riscv64", "-machine", "virt", "-accel", "tcg", "-bios", bios]
        if os.environ.get("FARM_CPU"):
            cmd += ["-cpu", os.environ["FARM_CPU"]]
    else:
        die(f"arch {arch}?")
    append = f"console={cons} panic=-1 quiet loglevel=3 rdinit=/init {append_extra}".strip()
    extra = os.environ.get("FARM_QEMU_EXTRA", "").split()
    return cmd + common + extra + ["-append", append]


def build_initrd(path, root, payload_dir, init_text, mods=None):
    """One newc cpio: the staging dir, /dev/console and /dev/null, /init, PAYLOAD_DIR as /payload,
    the modules MODS ({name: path}) as /modules/NAME.ko."""
    def fill(c):
        c.add("modules", stat.S_IFDIR | 0o755)
        for name, mp in (mods or {}).items():
            c.add(f"modules/{name}.ko", stat.S_IFREG | 0o644, open(mp, "rb").read())
        c.add_tree(root)
        c.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        c.add("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3))
        c.add("init", stat.S_IFREG | 0o755, init_text.encode())
        c.add("payload", stat.S_IFDIR | 0o755)
        if payload_dir:
            c.add_tree(payload_dir, prefix="payload/")
    write_cpio(path, fill)


def cmd_run(kernel, payload_dir, out_dir):
    t_start = time.time()
    timeout = float(os.environ.get("FARM_TIMEOUT", "1200"))
    payload_dir = os.path.abspath(payload_dir)
    if not os.path.isdir(payload_dir):
        die(f"{payload_dir}: not a directory")
    os.makedirs(out_dir, exist_ok=True)
    lock = resolve(kernel)
    image = boot_image(lock)
    t0 = time.time()
    root, uinfo = userland(lock)
    t_userland = time.time() - t0
    nonce = hashlib.sha256(os.urandom(16)).hexdigest()[:16]
    init = INIT.replace("@NONCE@", nonce).replace("@KERNEL@", kernel)
    tmpd = tempfile.mkdtemp(prefix="run-", dir=os.path.join(cache_dir()))
    try:
        t0 = time.time()
        initrd = os.path.join(tmpd, "initrd")
        build_initrd(initrd, root, payload_dir, init, modules(lock))
        t_initrd = time.time() - t0
        initrd_bytes = os.path.getsize(initrd)
        cmd = qemu_cmd(lock, image, initrd, os.environ.get("FARM_APPEND", ""))
        log("qemu:", " ".join(cmd))
        res = boot(cmd, nonce, timeout, out_dir)
    finally:
        shutil.rmtree(tmpd, ignore_errors=True)
    res.update({
        "kernel_name": kernel, "package": lock["kernel"]["package"], "version": lock["kernel"]["version"],
        "abi": lock["kernel"]["abi"], "accel": os.environ.get("FARM_ACCEL", "tcg"),
        "userland_s": round(t_userland, 2), "initrd_s": round(t_initrd, 2),
        "initrd_bytes": initrd_bytes, "execs_in_image": uinfo["execs"],
        "total_s": round(time.time() - t_start, 2),
    })
    with open(os.path.join(out_dir, "farm-run.json"), "w") as f:
        json.dump(res, f, indent=1)
    summary = (f"{kernel}: accel={res['accel']} initrd {initrd_bytes / 1e6:.0f} MB in {res['initrd_s']}s, to /init {res.get('to_init_s')}s"
               f" (guest uptime {res.get('guest_uptime_at_init')}), payload rc={res.get('rc')},"
               f" qemu {res.get('qemu_s')}s, total {res['total_s']}s")
    log(summary)
    if res.get("ok"):
        rec = {"version": res["version"], "abi": res["abi"], "proc_version": res.get("proc_version"),
               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        rd = os.path.join(cache_dir(), "runs")
        os.makedirs(rd, exist_ok=True)
        with open(os.path.join(rd, kernel + ".json"), "w") as f:
            json.dump(rec, f)
        return 0
    log(f"{kernel}: FAILED: {res.get('error')}; console log in {out_dir}/console.log")
    return 1


def boot(cmd, nonce, timeout, out_dir):
    import selectors
    t0 = time.time()
    logf = open(os.path.join(out_dir, "console.log"), "wb")
    echo = os.environ.get("FARM_ECHO") == "1"
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    buf = b""
    res = {"ok": False}
    state = "boot"
    b64 = []
    end_seen_at = None
    mi, mb, me, md = (f"@@FARM-{w} {nonce}".encode() for w in ("INIT", "BEGIN", "END", "DONE"))
    eof = False
    while True:
        now = time.time()
        if now - t0 > timeout:
            res["error"] = f"timeout after {timeout:.0f}s (state: {state})"
            break
        if end_seen_at and now - end_seen_at > 30:
            break  # the guest did not power off; enough
        if eof:
            break
        for _key, _ in sel.select(timeout=1.0):
            chunk = os.read(p.stdout.fileno(), 1 << 16)
            if not chunk:
                eof = True
                break
            logf.write(chunk)
            if echo:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                line = line.rstrip(b"\r")
                if mi in line and "to_init_s" not in res:
                    res["to_init_s"] = round(time.time() - t0, 2)
                    m = re.search(rb"uptime=([0-9.]+)", line)
                    res["guest_uptime_at_init"] = float(m.group(1)) if m else None
                elif md in line:
                    res["payload_done_s"] = round(time.time() - t0, 2)
                    m = re.search(rb"uptime=([0-9.]+)", line)
                    res["guest_uptime_at_done"] = float(m.group(1)) if m else None
                elif line.endswith(mb):
                    state = "collect"
                elif me in line and state == "collect":
                    state = "end"
                    end_seen_at = time.time()
                    m = re.search(rb"rc=(\d+)", line)
                    res["rc"] = int(m.group(1)) if m else None
                elif state == "collect":
                    if re.fullmatch(rb"[A-Za-z0-9+/=]+", line):
                        b64.append(line)
    if p.poll() is None:
        p.kill()
    p.wait()
    logf.close()
    res["qemu_s"] = round(time.time() - t0, 2)
    res["qemu_rc"] = p.returncode
    if state == "end":
        try:
            data = gzip.decompress(base64.b64decode(b"".join(b64)))
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                for m in tf.getmembers():
                    n = norm(m.name)
                    if n == "out" or not n.startswith("out/"):
                        continue
                    m.name = n[4:]
                    tf.extract(m, out_dir, filter="data")
            res["ok"] = True
        except Exception as e:  # noqa: BLE001
            res["error"] = f"could not unpack the guest's tar: {e}"
        pv = os.path.join(out_dir, "proc_version")
        if os.path.exists(pv):
            res["proc_version"] = open(pv, errors="replace").read().strip()
    elif "error" not in res:
        res["error"] = f"qemu exited (rc {p.returncode}) before the end marker (state: {state})"
    return res


# ---------------------------------------------------------------- list

def cmd_list():
    rd = os.path.join(cache_dir(), "runs")
    print(f"{'KERNEL':14} {'package':32} {'version':22} {'uname -r':24} seen in guest")
    for k in KERNELS:
        try:
            lock = resolve(k)
        except SystemExit:
            print(f"{k:14} (could not resolve)")
            continue
        e = lock["kernel"]
        seen = ""
        rp = os.path.join(rd, k + ".json")
        if os.path.exists(rp):
            r = json.load(open(rp))
            pv = (r.get("proc_version") or "").strip()
            m = re.match(r"Linux version (\S+) .*(Debian \S+ \([0-9-]+\))\s*$", pv)
            seen = f"{m.group(1)}, {m.group(2)}" if m else pv[:80]
        print(f"{k:14} {e['package']:32} {e['version']:22} {e['abi']:24} {seen}")


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    c = argv[1]
    if c == "resolve" and len(argv) == 3:
        resolve(argv[2])
        print(lock_path(argv[2]))
    elif c == "fetch" and len(argv) == 3:
        cmd_fetch(argv[2])
    elif c == "prepare" and len(argv) == 3:
        cmd_prepare(argv[2])
    elif c == "run" and len(argv) == 5:
        sys.exit(cmd_run(argv[2], argv[3], argv[4]))
    elif c == "list":
        cmd_list()
    elif c == "kernels":
        print("\n".join(KERNELS))
    elif c == "arch" and len(argv) == 3:
        print(kernel_spec(argv[2])[1])
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
