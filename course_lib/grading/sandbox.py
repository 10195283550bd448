"""The sandbox one submission's kernel runs in: bubblewrap (``bwrap``) namespaces, read-only binds, size-limited
tmpfs, rlimits and a seccomp filter.

Stdlib only, on purpose: ``launcher.py`` (the kernel's ``argv[0]``, started by jupyter_client) imports this file by
path with ``python -I -S`` so that a kernel start costs no site-packages import.

Two modes, picked from who runs the grader:

* ``root``: bwrap runs privileged without a user namespace (it could not bind the Python install if it lived under
  ``/root`` otherwise), then ``setpriv`` drops to a fresh uid of its own with no capabilities and no new privileges.
  A fresh real uid is what makes ``RLIMIT_NPROC`` count only this sandbox's tasks (the kernel never applies it to
  uid 0, even inside a user namespace that maps another uid onto root).
* ``user``: bwrap runs unprivileged in a new user namespace (``--unshare-all --disable-userns``); ``RLIMIT_NPROC``
  is set *inside* that namespace, where the kernel counts per namespace.

Both: ``--unshare-net`` (loopback only), own pid/ipc/uts namespaces, ``--die-with-parent``, ``--new-session``, the
root filesystem read-only, only ``/tmp`` and the working folder writable (tmpfs with a size), the seccomp filter
below (no new namespaces, mounts, ptrace, bpf, keyrings: a nested user namespace would otherwise let a notebook
mount an unbounded tmpfs).
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys

MB = 1024 * 1024
SANDBOX_UID_BASE = 1_500_000_000  # far above login and container (subuid) ranges
KERNEL_USER = "student"
PASS_ENV = ("NBGRADER_EXECUTION", "COURSE_PROFILE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "fonts", "mime.types",
             "nsswitch.conf", "hosts")


def default_limits(cell_timeout: float, notebook_timeout: float, memory_mb: int) -> dict:
    """The rlimits of one kernel (``prlimit`` names). ``nproc`` counts threads too: ipykernel starts about ten."""
    return {"as": memory_mb * MB, "nproc": 64, "fsize": 64 * MB, "cpu": int(notebook_timeout + cell_timeout) + 5,
            "nofile": 256, "core": 0}


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def sandbox_uid(batch_id: int, index: int) -> int:
    """A uid no other batch of this machine uses at the same time (root mode): one per submission."""
    return SANDBOX_UID_BASE + (batch_id % 100_000) * 10_000 + index % 10_000


def read_only_roots(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """What a kernel may read besides ``/usr``: the Python install, the venv, course_lib and the course's data, the
    model cache, and the instructor's extras. Never the course folder, the submissions or the output folder."""
    import importlib.util

    roots = [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)]
    spec = importlib.util.find_spec("course_lib")
    if spec and spec.submodule_search_locations:
        package = os.path.realpath(list(spec.submodule_search_locations)[0])
        roots.append(package)
        data = os.path.join(os.path.dirname(package), "data")
        if os.path.isdir(data):
            roots.append(data)
    cache = os.environ.get("COURSE_CACHE") or os.path.expanduser("~/.cache/finetune-course")
    if os.path.isdir(cache):
        roots.append(os.path.realpath(cache))
    roots += [os.path.realpath(p) for p in extra]
    out: list[str] = []
    for root in roots:
        if root.startswith("/usr/") or root == "/usr":
            continue
        if root not in out and not any(root.startswith(r + os.sep) for r in out):
            out = [r for r in out if not r.startswith(root + os.sep)] + [root]
    return out


def leaks(roots: list[str], secrets: list[str]) -> list[str]:
    """The secret paths (course source, gradebook, submissions, output) a read-only root would expose."""
    found = []
    for secret in secrets:
        real = os.path.realpath(secret)
        for root in roots + ["/usr"]:
            if real == root or real.startswith(root + os.sep):
                found.append(f"{secret} (inside {root})")
    return found


def make_spec(*, mode: str, uid: int, python: str, ro_roots: list[str], ipc_dir: str, etc_dir: str,
              limits: dict, workdir_mb: int = 256, tmp_mb: int = 256, env: dict | None = None,
              seccomp_file: str | None = None) -> dict:
    """Everything the launcher needs, as JSON-able data (written to the submission's scratch folder)."""
    if mode not in ("root", "user", "none"):
        raise ValueError(f"sandbox mode must be root, user or none, not {mode!r}")
    base_env = {"HOME": "/tmp", "USER": KERNEL_USER, "LOGNAME": KERNEL_USER, "LANG": "C.UTF-8",
                "PATH": f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
                "MPLCONFIGDIR": "/tmp/.matplotlib", "IPYTHONDIR": "/tmp/.ipython", "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    base_env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
    base_env.update(env or {})
    return {"mode": mode, "uid": uid, "python": python, "bwrap": find_bwrap() or "bwrap", "ro_roots": ro_roots,
            "ipc_dir": ipc_dir, "etc_dir": etc_dir, "limits": limits, "workdir_mb": workdir_mb, "tmp_mb": tmp_mb,
            "env": base_env, "seccomp_file": seccomp_file}


def write_etc(folder: str, uid: int) -> None:
    """A two-line ``/etc/passwd`` and ``/etc/group`` so that ``getpass.getuser()`` works for the sandbox uid."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "passwd"), "w") as f:
        f.write(f"root:x:0:0::/root:/bin/false\n{KERNEL_USER}:x:{uid}:{uid}::/tmp:/bin/false\n")
    with open(os.path.join(folder, "group"), "w") as f:
        f.write(f"root:x:0:\n{KERNEL_USER}:x:{uid}:\n")


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def bwrap_args(spec: dict, cwd: str, connection_file: str, kernel_argv: list[str], seccomp_fd: int | None) -> list[str]:
    """The full command line: ``bwrap ... -- [setpriv ...] prlimit --nproc=N -- <kernel_argv>``.

    ``cwd`` is the notebook's folder on the host (nbgrader's autograded copy): its files are bound read-only into a
    size-limited tmpfs at ``/home/student/<name>``, the kernel's working folder; notebooks in it are not bound."""
    mode = spec["mode"]
    if mode == "root":
        args = [spec["bwrap"], "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try"]
    else:
        args = [spec["bwrap"], "--unshare-all", "--unshare-user", "--disable-userns"]
    args += ["--die-with-parent", "--new-session", "--hostname", "grading-sandbox", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + name
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    made: set[str] = {"/usr"}

    def mkdirs(path: str) -> None:
        for parent in _parents(path):
            if parent not in made:
                made.add(parent)
                args.extend(["--perms", "0755", "--dir", parent])

    for name in ETC_FILES:
        if os.path.exists("/etc/" + name):
            args += ["--ro-bind", "/etc/" + name, "/etc/" + name]
    for name in ("passwd", "group"):
        args += ["--ro-bind", os.path.join(spec["etc_dir"], name), "/etc/" + name]
    # /proc, /dev and the private /tmp first: a read-only root under /tmp (a checkout in /tmp) is bound on top of the
    # tmpfs, not hidden by it
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(spec["tmp_mb"] * MB), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(16 * MB), "--tmpfs", "/dev/shm"]
    made.update({"/tmp", "/dev"})
    for root in spec["ro_roots"]:
        mkdirs(root)
        args += ["--ro-bind", root, root]
    for path in (spec["ipc_dir"], connection_file):
        mkdirs(path)
    args += ["--bind", spec["ipc_dir"], spec["ipc_dir"], "--ro-bind", connection_file, connection_file]
    work = f"/home/{KERNEL_USER}/" + (os.path.basename(os.path.normpath(cwd)) or "work")
    mkdirs(work)
    args += ["--perms", "1777", "--size", str(spec["workdir_mb"] * MB), "--tmpfs", work]
    for entry in sorted(os.listdir(cwd)):
        if not entry.endswith(".ipynb"):
            args += ["--ro-bind", os.path.join(cwd, entry), f"{work}/{entry}"]
    args += ["--remount-ro", "/", "--chdir", work, "--clearenv"]
    for key, value in spec["env"].items():
        args += ["--setenv", key, str(value)]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    if mode == "root":
        uid = str(spec["uid"])
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                 "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--no-new-privs"]
    args += ["--", "prlimit", f"--nproc={spec['limits']['nproc']}", "--"]
    return args + kernel_argv


def apply_limits(limits: dict, *, nproc: bool) -> None:
    """setrlimit (soft = hard, so the notebook cannot raise them) for this process and what it executes."""
    import resource

    names = {"as": resource.RLIMIT_AS, "fsize": resource.RLIMIT_FSIZE, "cpu": resource.RLIMIT_CPU,
             "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}
    if nproc:
        names["nproc"] = resource.RLIMIT_NPROC
    for key, which in names.items():
        resource.setrlimit(which, (int(limits[key]), int(limits[key])))


# --- seccomp: a classic BPF program, assembled by hand (no libseccomp binding in the venv) -------------------------
_CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_SYSCALLS = {  # arch: (audit arch, clone, clone3, denied syscalls)
    "x86_64": (0xC000003E, 56, 435, [272, 308, 165, 166, 155, 101, 250, 248, 249, 321, 298, 323, 310, 311,
                                     428, 429, 430, 431, 432, 433, 442]),
    "aarch64": (0xC00000B7, 220, 435, [97, 268, 40, 39, 41, 117, 219, 217, 218, 280, 241, 282, 270, 271,
                                       428, 429, 430, 431, 432, 433, 442]),
}
DENIED_SYSCALLS = ("unshare", "setns", "mount", "umount2", "pivot_root", "ptrace", "keyctl", "add_key", "request_key",
                   "bpf", "perf_event_open", "userfaultfd", "process_vm_readv", "process_vm_writev", "open_tree",
                   "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr")


def seccomp_program(machine: str | None = None) -> bytes | None:
    """EPERM for the denied syscalls and for clone() with namespace flags, ENOSYS for clone3 (glibc then falls
    back to clone, whose flags a classic filter can read), EPERM for another architecture or x32; None when this
    CPU architecture is not known here (the sandbox then runs without the filter and says so)."""
    table = _SYSCALLS.get(machine or platform.machine())
    if table is None:
        return None
    arch, clone, clone3, denied = table

    def stmt(code: int, k: int) -> bytes:
        return struct.pack("HBBI", code, 0, 0, k)

    def jump(code: int, k: int, jt: int, jf: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    prog = [stmt(ld, 4), jump(jeq, arch, 1, 0), stmt(ret, eperm), stmt(ld, 0),
            jump(jge, 0x40000000, 0, 1), stmt(ret, eperm)]
    for nr in denied:
        prog += [jump(jeq, nr, 0, 1), stmt(ret, eperm)]
    prog += [jump(jeq, clone3, 0, 1), stmt(ret, enosys),
             jump(jeq, clone, 0, 3), stmt(ld, 16), jump(jset, _CLONE_NAMESPACES, 0, 1), stmt(ret, eperm),
             stmt(ret, allow)]
    return b"".join(prog)


def probe(spec: dict, scratch: str) -> tuple[bool, str]:
    """Start a throw-away sandbox with ``spec`` (its python prints "ok"); (works, what went wrong)."""
    if spec["mode"] == "none":
        return True, "no sandbox"
    if not shutil.which(spec["bwrap"]):
        return False, "bwrap (bubblewrap) is not installed"
    cwd = os.path.join(scratch, "probe-work")
    os.makedirs(cwd, exist_ok=True)
    os.makedirs(spec["ipc_dir"], exist_ok=True)
    connection = os.path.join(scratch, "probe-connection.json")
    with open(connection, "w") as f:
        f.write("{}")
    code = "import socket,os;s=socket.socket();s.settimeout(1)\ntry: s.connect(('1.1.1.1',53)); print('net')\n" \
           "except OSError: pass\nprint('ok', os.getuid())"
    fd = _seccomp_fd(spec)
    argv = bwrap_args(spec, cwd, connection, [spec["python"], "-I", "-S", "-c", code], fd)
    if spec["mode"] == "root":
        os.chown(spec["ipc_dir"], spec["uid"], spec["uid"])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, pass_fds=[fd] if fd else [],
                              preexec_fn=lambda: apply_limits(spec["limits"], nproc=False))
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"{argv[0]} could not run: {err}"
    finally:
        if fd is not None:
            os.close(fd)
    out = done.stdout.split()
    if done.returncode != 0 or not out or out[0] != "ok":
        return False, f"bwrap exited {done.returncode}: {(done.stderr or done.stdout).strip()[-500:]}"
    if "net" in done.stdout:
        return False, "the sandbox reached the network (--unshare-net had no effect)"
    if spec["mode"] == "root" and out[1] != str(spec["uid"]):
        return False, f"the kernel ran as uid {out[1]}, not the sandbox uid {spec['uid']}"
    return True, "ok"


def _seccomp_fd(spec: dict) -> int | None:
    if not spec.get("seccomp_file"):
        return None
    fd = os.open(spec["seccomp_file"], os.O_RDONLY)
    os.set_inheritable(fd, True)
    return fd


def launch(spec: dict, connection_file: str, kernel_argv: list[str]) -> None:
    """Replace this process with the sandboxed kernel (called by ``launcher.py``; never returns)."""
    cwd = os.getcwd()
    if spec["mode"] == "none":
        apply_limits(spec["limits"], nproc=os.geteuid() != 0)
        os.execv(kernel_argv[0], kernel_argv)
    if spec["mode"] == "root":
        os.chown(connection_file, spec["uid"], spec["uid"])
        os.chown(spec["ipc_dir"], spec["uid"], spec["uid"])
    fd = _seccomp_fd(spec)
    argv = bwrap_args(spec, cwd, connection_file, kernel_argv, fd)
    apply_limits(spec["limits"], nproc=False)
    os.execv(shutil.which(argv[0]) or argv[0], argv)


def describe(spec: dict, *, cell_timeout: float, notebook_timeout: float, output_mb: float) -> str:
    """The isolation every submission got, in words, for summary.md and the CSV's header comment."""
    lim = spec["limits"]
    limits = (f"cell time {cell_timeout:g} s (then interrupted; killed if it ignores the interrupt), notebook time "
              f"{notebook_timeout:g} s, memory {lim['as'] // MB} MB address space, {lim['nproc']} processes+threads, "
              f"files up to {lim['fsize'] // MB} MB, CPU {lim['cpu']} s per process, {lim['nofile']} open files, "
              f"output {output_mb:g} MB per cell")
    if spec["mode"] == "none":
        return ("NO SANDBOX (--no-sandbox-i-understand): kernels ran as this user with network access and could read "
                "the course's source (hidden tests), the gradebook and other students' files. Limits: " + limits)
    who = (f"a uid of its own ({spec['uid']}+, no capabilities, no new privileges)" if spec["mode"] == "root"
           else "this user inside a user namespace")
    seccomp = ("seccomp: no new namespaces, mounts, ptrace, bpf or keyrings" if spec.get("seccomp_file")
               else "no seccomp filter (unknown CPU architecture)")
    return (f"Isolation: each submission ran in its own bubblewrap sandbox as {who}: no network (own network "
            f"namespace), own pid/ipc/uts namespaces, read-only /usr, Python, venv and course code "
            f"({', '.join(spec['ro_roots'])}); no access to the course source (hidden tests), the gradebook, other "
            f"submissions or the output folder; writable only its working folder (tmpfs {spec['workdir_mb']} MB) and "
            f"/tmp (tmpfs {spec['tmp_mb']} MB); {seccomp}. Limits: {limits}.")
