"""The file-system view of exec'd commands: the host's tree, read-only, plus ``/agnhost``, in a
private mount namespace.

Why: ``sh -c`` batches call ``/agnhost connect`` by absolute path. A holder process builds, once per
cluster and without touching the host's ``/``, a tmpfs root that bind-mounts every top-level
entry of ``/`` and adds ``/agnhost``; exec'd commands enter it with ``nsenter --root``. Every
mount of that view is then made read-only, with a fresh tmpfs on ``/tmp`` as the only scratch
space: an exec (which runs as root) can read the host's files but never change them.
Standard library only: the holder runs as ``python -IS rootfs.py ROOT`` under ``unshare --mount``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
# Per-mount flags a read-only remount must keep (the kernel refuses to clear locked ones).
_KEEP = {
    "nosuid": 2,
    "nodev": 4,
    "noexec": 8,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
    "strictatime": 1 << 24,
}
_CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agnhost_cli.py")


def _mount(src: str, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    res = libc.mount(
        src.encode(),
        dst.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if res != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {dst}: {os.strerror(err)}")


def build(root: str, native: str = "") -> None:
    """Populate ``root`` (in the current, private mount namespace) and chroot into it.

    ``/agnhost`` is the compiled ``native`` program when given, else the Python one.
    """
    _mount("tmpfs", root, "tmpfs", 0, "mode=755")
    for entry in sorted(os.listdir("/")):
        src, dst = "/" + entry, os.path.join(root, entry)
        if entry in ("agnhost", "tmp"):
            continue
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            _mount(src, dst, None, MS_BIND | MS_REC)
        elif os.path.isfile(src):
            with open(dst, "w"):
                pass
            _mount(src, dst, None, MS_BIND)
    target = os.path.join(root, "agnhost")
    if native:
        with open(native, "rb") as fin, open(target, "wb") as fout:
            fout.write(fin.read())
    else:
        with open(_CLI, encoding="utf-8") as fh:
            body = fh.read()
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(f"#!{sys.executable} -IS\n{body}")
    os.chmod(target, 0o755)
    os.mkdir(os.path.join(root, "tmp"))
    _read_only(root)
    _mount("tmpfs", os.path.join(root, "tmp"), "tmpfs", 0, "mode=1777,size=64m")
    os.chroot(root)
    os.chdir("/")


def _read_only(root: str) -> None:
    """Remount ``root`` and every mount below it read-only (bind remounts: host mounts keep
    their own flags, only this view's are changed)."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 etc. are octal escapes
            if point == root or point.startswith(root + "/"):
                points.append((point, fields[5].split(",")))
    for point, options in points:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in options:
            flags |= _KEEP.get(option, 0)
        try:
            _mount("none", point, None, flags)
        except OSError as exc:
            # Gone since mountinfo was read (a network namespace file of another cluster).
            if exc.errno not in (errno.ENOENT, errno.EINVAL):
                raise


def main() -> None:
    """Holder: build the tree, say ``ready``, then live until stdin closes (the daemon's end)."""
    build(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()


def holder_argv(root: str, native: str = "") -> list[str]:
    """Command line that starts a holder for ``root`` (``native``: compiled /agnhost or "")."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        sys.executable,
        "-IS",
        __file__,
        root,
        native,
    ]


def exec_argv(holder_pid: int, netns_file: str, command: list[str]) -> list[str]:
    """Command line that runs ``command`` in the holder's file view and the pod's network."""
    return [
        "nsenter",
        f"--target={holder_pid}",
        "--mount",
        "--root",
        "--wd",
        f"--net={netns_file}",
        "--",
        *command,
    ]


if __name__ == "__main__":
    main()
