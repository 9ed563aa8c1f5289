"""Real FUSE mounts of the in-memory test file system, driven by ordinary system calls and tools.

Each test mounts tests/fusion_client/fuse/memfs.py in this process (worker threads serve the
kernel while the test thread uses the mount) and unmounts afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from fusion_client.fuse import (
    Context,
    FuseSession,
    MountError,
    MountOptions,
    Operations,
    ReadReply,
    abi,
    mount,
    mounting,
)
from fusion_client.fuse.system import mount_device
from tests.fusion_client.fuse.memfs import SLOW_NAME, MemFS
from tests.support import REPO, need_binary, wait_until

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse"),
    pytest.mark.fuse,
]

MiB = 1 << 20


@dataclass
class Mounted:
    fs: MemFS
    path: Path
    session: FuseSession


@contextlib.contextmanager
def mounted(
    tmp_path: Path,
    fs: MemFS | None = None,
    options: MountOptions | None = None,
    threads: int = 4,
) -> Iterator[Mounted]:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir(parents=True)
    fs = fs or MemFS()
    session = mount(fs, str(mountpoint), options)
    try:
        session.start(threads)
        yield Mounted(fs, mountpoint, session)
    finally:
        assert session.stop_and_unmount(lazy=True, timeout=30), "workers did not stop"


@pytest.fixture
def mnt(tmp_path: Path) -> Iterator[Mounted]:
    with mounted(tmp_path) as m:
        yield m


def started(tmp_path: Path, threads: int) -> tuple[Path, FuseSession]:
    """A served MemFS mount the test itself unmounts: for tests about unmounting."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    session = mount(MemFS(), str(mountpoint))
    session.start(threads=threads)
    return mountpoint, session


def mount_entry(path: Path) -> list[str] | None:
    """The /proc/self/mountinfo fields after the separator for `path`: [fstype, source, opts]."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            return fields[fields.index("-") + 1 :]
    return None


def test_mount_negotiates_1mib_requests_with_the_kernel(mnt: Mounted) -> None:
    conn = mnt.fs.conn
    assert conn is not None and conn.max_write == MiB and conn.max_pages == 256
    assert conn.has(abi.ASYNC_READ) and conn.has(abi.DO_READDIRPLUS)
    assert not conn.has(abi.WRITEBACK_CACHE)
    assert mount_entry(mnt.path)[:2] == ["fuse.fusion", "fusion"]


def test_root_is_an_empty_directory_with_statfs(mnt: Mounted) -> None:
    assert os.listdir(mnt.path) == []
    assert os.stat(mnt.path).st_ino == 1
    assert os.statvfs(mnt.path).f_blocks == 1 << 20


def test_file_written_in_1mib_requests_reads_back_identical(mnt: Mounted) -> None:
    data = os.urandom(4 * MiB + 123)
    path = mnt.path / "big"
    path.write_bytes(data)
    assert max(mnt.fs.write_sizes) == MiB
    assert path.read_bytes() == data
    assert os.stat(path).st_size == len(data)


def drop_page_cache(path: Path) -> None:
    """Make the next reads of `path` reach the file system instead of the kernel's cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_sequential_reads_arrive_as_1mib_requests_thanks_to_raised_readahead(
    tmp_path: Path,
) -> None:
    with mounted(tmp_path / "with space") as m:  # mountinfo escapes the space
        readahead = Path(f"/sys/class/bdi/{mount_device(str(m.path))}/read_ahead_kb")
        assert readahead.read_text().strip() == "1024"
        (m.path / "f").write_bytes(os.urandom(8 * MiB))
        drop_page_cache(m.path / "f")
        with open(m.path / "f", "rb", buffering=0) as f:
            while f.read(256 * 1024):
                pass
        assert max(m.fs.read_sizes) == MiB


def test_notifications_drop_what_the_kernel_cached(tmp_path: Path) -> None:
    fs = MemFS(timeout=3600, keep_cache=True)
    fs.populate([b"f"], b"old")
    fs.populate([b"gone"])
    # read-only: on a writable mount every read also invalidates the cached atime, so the next
    # stat asks again anyway (and a changed size then drops the cached pages)
    with mounted(tmp_path, fs, MountOptions(read_only=True)) as m:
        assert (m.path / "f").read_bytes() == b"old" and (m.path / "gone").exists()
        ino = fs.replace_behind(b"f", b"new content")
        fs.remove_behind(b"gone")
        assert (m.path / "f").read_bytes() == b"old" and (m.path / "gone").exists()  # cached
        assert m.session.notify_inval_inode(ino)
        assert m.session.notify_inval_entry(1, b"gone")
        assert (m.path / "f").read_bytes() == b"new content"
        assert not (m.path / "gone").exists()
        assert not m.session.notify_inval_entry(1, b"never-looked-up")


def test_read_replies_made_of_several_buffers_are_released(mnt: Mounted) -> None:
    (mnt.path / "f").write_bytes(b"0123456789" * 1000)
    drop_page_cache(mnt.path / "f")
    assert (mnt.path / "f").read_bytes() == b"0123456789" * 1000
    assert mnt.fs.calls["read"] > 0
    wait_until(lambda: mnt.fs.read_releases == mnt.fs.calls["read"], 10, "every release")


def test_a_file_created_in_a_new_directory_reads_back(mnt: Mounted) -> None:
    (mnt.path / "d").mkdir()
    (mnt.path / "d" / "a").write_text("hello")
    assert (mnt.path / "d").is_dir()
    assert os.listdir(mnt.path / "d") == ["a"]
    assert (mnt.path / "d" / "a").read_text() == "hello"


def test_rename_moves_a_file_between_directories(mnt: Mounted) -> None:
    (mnt.path / "d").mkdir()
    (mnt.path / "d" / "a").write_text("hello")
    os.rename(mnt.path / "d" / "a", mnt.path / "b")
    assert (mnt.path / "b").read_text() == "hello"
    assert os.listdir(mnt.path / "d") == []
    assert sorted(os.listdir(mnt.path)) == ["b", "d"]


def test_a_symlink_reads_its_target_and_follows_it(mnt: Mounted) -> None:
    (mnt.path / "b").write_text("hello")
    os.symlink("b", mnt.path / "link")
    assert os.readlink(mnt.path / "link") == "b"
    assert (mnt.path / "link").read_text() == "hello"
    assert sorted(os.listdir(mnt.path)) == ["b", "link"]


def test_unlink_removes_a_file_and_a_symlink(mnt: Mounted) -> None:
    (mnt.path / "b").write_text("hello")
    os.symlink("b", mnt.path / "link")
    os.unlink(mnt.path / "link")
    assert os.listdir(mnt.path) == ["b"]
    os.unlink(mnt.path / "b")
    assert os.listdir(mnt.path) == []


def test_removing_the_mountpoint_itself_is_busy(mnt: Mounted) -> None:
    with pytest.raises(OSError) as busy:
        os.rmdir(mnt.path)
    assert busy.value.errno == errno.EBUSY


def test_rmdir_refuses_a_directory_with_entries(mnt: Mounted) -> None:
    (mnt.path / "d").mkdir()
    (mnt.path / "d" / "x").write_text("x")
    with pytest.raises(OSError) as notempty:
        os.rmdir(mnt.path / "d")
    assert notempty.value.errno == errno.ENOTEMPTY
    assert (mnt.path / "d" / "x").read_text() == "x"


def test_rmdir_removes_an_empty_directory(mnt: Mounted) -> None:
    (mnt.path / "d").mkdir()
    os.rmdir(mnt.path / "d")
    assert os.listdir(mnt.path) == []


def test_truncate_and_open_with_o_trunc(mnt: Mounted) -> None:
    path = mnt.path / "t"
    path.write_bytes(b"abcdef")
    os.truncate(path, 3)
    assert path.read_bytes() == b"abc"
    os.truncate(path, 5)
    assert path.read_bytes() == b"abc\0\0"
    with open(path, "wb") as f:  # O_TRUNC, passed to open() with ATOMIC_O_TRUNC
        f.write(b"z")
    assert path.read_bytes() == b"z"


def test_operations_the_file_system_lacks_fail_with_the_kernels_errno(tmp_path: Path) -> None:
    class WithoutMknod(MemFS):
        mknod = Operations.mknod

    with mounted(tmp_path, WithoutMknod()) as m:
        (m.path / "a").write_text("a")
        with pytest.raises(OSError) as fifo:
            os.mkfifo(m.path / "fifo")
        assert fifo.value.errno == errno.ENOSYS  # passed through as answered
        with pytest.raises(OSError) as link:
            os.link(m.path / "a", m.path / "b")
        assert link.value.errno == errno.EPERM  # the kernel maps LINK's ENOSYS to EPERM
        for _ in range(2):
            with pytest.raises(OSError) as xattr:
                os.getxattr(m.path / "a", "user.x")
            assert xattr.value.errno == errno.EOPNOTSUPP  # after ENOSYS the kernel stops asking


def test_listing_2000_entries_takes_several_readdirplus_replies(tmp_path: Path) -> None:
    fs = MemFS(timeout=3600)  # entries outlive even a slow `ls -l` on a loaded machine
    names = [f"file-{i:05d}".encode() for i in range(2000)]
    fs.populate(names, b"xyz")
    with mounted(tmp_path, fs, MountOptions(readdirplus="always")) as m:
        listed = subprocess.run(
            ["ls", "-l", "--time-style=+", str(m.path)], capture_output=True, text=True, check=True
        ).stdout.splitlines()[1:]
        assert [line.split()[-1] for line in listed] == [n.decode() for n in names]
        assert all(line.split()[4] == "3" for line in listed)
        assert fs.calls["readdirplus"] > 2  # one kernel buffer holds a few hundred
        assert fs.calls["lookup"] == 0  # every attribute came with the listing


def test_listing_works_for_a_file_system_without_readdirplus(tmp_path: Path) -> None:
    class WithoutReaddirplus(MemFS):
        readdirplus = Operations.readdirplus

    fs = WithoutReaddirplus()
    fs.populate([b"a", b"b"])
    with mounted(tmp_path, fs) as m:
        assert sorted(os.listdir(m.path)) == ["a", "b"]
        assert fs.calls["readdir"] > 0 and fs.calls["readdirplus"] == 0


def test_lookup_counts_balance_once_the_kernel_forgets(tmp_path: Path) -> None:
    fs = MemFS(timeout=60)
    fs.populate([f"f{i}".encode() for i in range(300)])
    with mounted(tmp_path, fs, MountOptions(readdirplus="always")) as m:
        for entry in os.scandir(m.path):
            entry.stat()
        (m.path / "sub").mkdir()
        (m.path / "sub" / "new").write_text("n")
        os.symlink("f1", m.path / "sym")
        assert len(fs.held_lookups()) == 303
        Path("/proc/sys/vm/drop_caches").write_text("2")  # the kernel evicts and FORGETs
        wait_until(lambda: not fs.held_lookups(), 30, "FORGET of every inode")
        assert fs.calls["forget"] > 0


def test_negative_entries_are_cached_by_the_kernel(tmp_path: Path) -> None:
    fs = MemFS(negative_timeout=60)
    with mounted(tmp_path, fs) as m:
        for _ in range(3):
            assert not (m.path / "missing").exists()
        assert fs.calls["lookup"] == 1
        (m.path / "missing").write_text("now here")
        assert (m.path / "missing").read_text() == "now here"


def test_concurrent_readers_on_several_threads_see_the_same_bytes(mnt: Mounted) -> None:
    data = os.urandom(8 * MiB)
    (mnt.path / "shared").write_bytes(data)
    drop_page_cache(mnt.path / "shared")

    def digest(block: int) -> str:
        h = hashlib.sha256()
        with open(mnt.path / "shared", "rb", buffering=0) as f:
            while chunk := f.read(block):
                h.update(chunk)
        return h.hexdigest()

    blocks = [4096, 65536, MiB, 3 * MiB, 12345, MiB + 1, 8192, 2 * MiB]
    with ThreadPoolExecutor(len(blocks)) as pool:
        assert set(pool.map(digest, blocks)) == {hashlib.sha256(data).hexdigest()}


def test_workers_on_cloned_descriptors_serve_requests_at_the_same_time(tmp_path: Path) -> None:
    together = threading.Barrier(3, timeout=20)

    class Rendezvous(MemFS):
        def read(self, ctx: Context, ino: int, fh: int, offset: int, size: int) -> ReadReply:
            together.wait()  # returns only once three READs are being served at once
            return super().read(ctx, ino, fh, offset, size)

    fs = Rendezvous()
    fs.populate([b"a", b"b", b"c"], b"x")
    devices_before = dev_fuse_descriptors()
    with mounted(tmp_path, fs) as m:
        assert dev_fuse_descriptors() - devices_before == 4  # the mount's own + 3 clones
        with ThreadPoolExecutor(3) as pool:
            assert list(pool.map(lambda n: (m.path / n).read_bytes(), "abc")) == [b"x"] * 3


def test_a_broken_reply_is_eio_for_the_caller_and_the_worker_carries_on(tmp_path: Path) -> None:
    class Broken(MemFS):
        def read(self, ctx: Context, ino: int, fh: int, offset: int, size: int) -> ReadReply:
            reply = super().read(ctx, ino, fh, offset, size)
            return None if ino == broken else reply  # type: ignore[return-value]

    fs = Broken()
    fs.populate([b"broken", b"fine"], b"data")
    broken = fs.child(1, b"broken").ino
    with mounted(tmp_path, fs, threads=1) as m:
        with pytest.raises(OSError) as failed:
            (m.path / "broken").read_bytes()
        assert failed.value.errno == errno.EIO
        assert (m.path / "fine").read_bytes() == b"data"


def test_workers_share_one_descriptor_where_clones_are_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = MemFS()
    fs.populate([b"f"], b"shared")
    devices_before = dev_fuse_descriptors()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    session = mount(fs, str(mountpoint))
    monkeypatch.setattr(abi, "DEVICE", str(tmp_path / "no-device-for-clones"))
    session.start(threads=3)
    try:
        assert dev_fuse_descriptors() - devices_before == 1
        with ThreadPoolExecutor(3) as pool:
            assert set(pool.map(lambda _: (mountpoint / "f").read_bytes(), range(9))) == {b"shared"}
    finally:
        assert session.stop_and_unmount(timeout=30)


def dev_fuse_descriptors() -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if _link(fd) == "/dev/fuse")


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def test_interrupted_read_returns_eintr_to_the_signalled_process(mnt: Mounted) -> None:
    (mnt.path / SLOW_NAME.decode()).write_text("never read")
    reader = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE_READER, str(mnt.path / SLOW_NAME.decode())],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline() == "opened\n"
        wait_until(lambda: mnt.fs.calls["read"] > 0, 10, "the READ to arrive")
        reader.send_signal(10)  # SIGUSR1: the kernel sends INTERRUPT for the pending READ
        assert reader.stdout.readline() == "interrupted\n"
        assert reader.wait(10) == 0
    finally:
        reader.kill()
    assert mnt.fs.interrupted


INTERRUPTIBLE_READER = """
import os, signal, sys
class Interrupted(Exception): pass
def on_signal(*_): raise Interrupted
signal.signal(signal.SIGUSR1, on_signal)
fd = os.open(sys.argv[1], os.O_RDONLY)
print("opened", flush=True)
try:
    os.read(fd, 100)
    print("read", flush=True)
except Interrupted:
    print("interrupted", flush=True)
"""


def test_serve_returns_when_unmounted_from_outside(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    fs = MemFS()
    session = mount(fs, str(mountpoint))
    server = threading.Thread(target=session.serve, kwargs={"threads": 3})
    server.start()
    (mountpoint / "f").write_text("idle now")
    subprocess.run(["umount", str(mountpoint)], check=True)
    server.join(30)
    assert not server.is_alive() and fs.destroyed
    assert mount_entry(mountpoint) is None


def test_a_mount_gone_before_it_was_served_fails_start_with_a_mount_error(
    tmp_path: Path,
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    session = mount(MemFS(), str(mountpoint))
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)
    with pytest.raises(MountError, match="no INIT from the kernel"):
        session.start(threads=2)
    assert mount_entry(mountpoint) is None and not session.serving


def test_stop_and_unmount_of_an_idle_mount_stops_every_worker(tmp_path: Path) -> None:
    mountpoint, session = started(tmp_path, threads=4)
    os.listdir(mountpoint)
    assert session.serving
    assert session.stop_and_unmount(timeout=30)
    assert mount_entry(mountpoint) is None
    assert not session.serving


def test_unmounting_a_busy_mount_says_so_and_lazy_unmount_waits_for_close(
    tmp_path: Path,
) -> None:
    mountpoint, session = started(tmp_path, threads=2)
    (mountpoint / "f").write_text("held open")
    held = open(mountpoint / "f")  # noqa: SIM115
    try:
        with pytest.raises(MountError, match=r"busy \(files open\); use a lazy unmount$"):
            session.stop_and_unmount()
        assert not session.stop_and_unmount(lazy=True, timeout=0.5)  # detached, still serving
        assert mount_entry(mountpoint) is None and held.read() == "held open"
    finally:
        held.close()
    assert session.wait(timeout=30)


def test_abort_fails_what_a_holder_of_a_lazily_unmounted_file_still_asks(
    tmp_path: Path,
) -> None:
    mountpoint, session = started(tmp_path, threads=2)
    (mountpoint / "f").write_text("held open")
    held = os.open(mountpoint / "f", os.O_RDONLY)
    try:
        assert not session.stop_and_unmount(lazy=True, timeout=0.2)
        assert session.abort()
        assert session.wait(timeout=30)
        with pytest.raises(OSError) as severed:
            os.read(held, 10)
        assert severed.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    finally:
        with contextlib.suppress(OSError):  # closing flushes, which fails on a severed mount
            os.close(held)


def test_a_client_exiting_with_its_own_file_open_on_the_mount_does_not_hang(
    tmp_path: Path,
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    leaky = (
        "import os, sys; from fusion_client.fuse import mount;"
        " from tests.fusion_client.fuse.memfs import MemFS;"
        " s = mount(MemFS(), sys.argv[1]); s.start(2);"
        " f = open(os.path.join(sys.argv[1], 'f'), 'w'); f.write('x'); f.flush()"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", leaky, str(mountpoint)], cwd=REPO, timeout=60, check=False
        )
        assert done.returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_fusermount3_path_mounts_serves_and_unmounts(tmp_path: Path) -> None:
    need_binary("fusermount3")
    with mounted(tmp_path, options=MountOptions(use_fusermount=True)) as m:
        assert mount_entry(m.path)[:2] == ["fuse.fusion", "fusion"]
        (m.path / "f").write_bytes(b"through fusermount3")
        assert (m.path / "f").read_bytes() == b"through fusermount3"
    assert mount_entry(m.path) is None


def run_as_nobody(
    script: str, mountpoint: str, *, isolated_device: bool
) -> subprocess.CompletedProcess[str]:
    """Run `script` (which drops to uid 65534 itself) with `mountpoint` as its argument.

    /dev/fuse is root-only on this machine (distros make it 0666); with isolated_device the
    script runs in a private mount namespace where a world-usable node is bound over it.
    """
    argv = [sys.executable, "-c", script, mountpoint]
    with tempfile.TemporaryDirectory(prefix="fuse-device-") as devices:
        if isolated_device:
            device = Path(devices) / "fuse"
            os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(10, 229))
            os.chmod(device, 0o666)
            shell = f'mount --bind {device} /dev/fuse && exec "$0" "$@"'
            unshare = need_binary("unshare")
            argv = [unshare, "--mount", "--propagation", "private", "sh", "-c", shell, *argv]
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_unprivileged_user_falls_back_to_fusermount3() -> None:
    fusermount = need_binary("fusermount3")
    with tempfile.TemporaryDirectory(prefix="fuse-nobody-") as top:  # pytest's tmp is 0700
        os.chmod(top, 0o755)
        mountpoint = Path(top) / "mnt"
        mountpoint.mkdir()
        os.chown(mountpoint, 65534, 65534)
        done = run_as_nobody(UNPRIVILEGED_MOUNT, str(mountpoint), isolated_device=True)
    assert done.stdout.splitlines() == [
        "running as uid 65534",
        f"cannot mount {mountpoint}: {fusermount}: option allow_other only allowed if "
        "'user_allow_other' is set in /etc/fuse.conf",
        "served: hello",
        "unmounted: True",
    ]


# Runs as root only until it drops to nobody, after importing everything it needs.
UNPRIVILEGED_MOUNT = textwrap.dedent("""
    import os, sys
    from fusion_client.fuse import mount, MountError, MountOptions
    from tests.fusion_client.fuse.memfs import MemFS
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    mountpoint = sys.argv[1]
    print("running as uid", os.getuid())
    try:
        mount(MemFS(), mountpoint, MountOptions(allow_other=True))
    except MountError as e:
        print(e)
    session = mount(MemFS(), mountpoint, MountOptions(allow_other=False))
    session.start(2)
    with open(os.path.join(mountpoint, "f"), "w") as f:
        f.write("hello")
    print("served:", open(os.path.join(mountpoint, "f")).read())
    print("unmounted:", session.stop_and_unmount(timeout=30))
""")


def test_mount_errors_name_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MountError, match=r"mnt: the mountpoint does not exist$"):
        mount(MemFS(), str(tmp_path / "mnt"))
    (tmp_path / "file").write_text("")
    with pytest.raises(MountError, match=r"file: the mountpoint is not a directory$"):
        mount(MemFS(), str(tmp_path / "file"))
    monkeypatch.setattr(abi, "DEVICE", str(tmp_path / "no-fuse"))
    with pytest.raises(MountError, match=r"does not exist .*--device /dev/fuse\)$"):
        mount(MemFS(), str(tmp_path))


def test_mounting_over_the_dead_mount_of_a_killed_client_says_how_to_clear_it(
    tmp_path: Path,
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    serve = (
        "import sys; from fusion_client.fuse import mount;"
        " from tests.fusion_client.fuse.memfs import MemFS;"
        "s = mount(MemFS(), sys.argv[1]); s.start(1); print('up', flush=True); s.wait()"
    )
    client = subprocess.Popen(
        [sys.executable, "-c", serve, str(mountpoint)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout.readline() == "up\n"
    finally:
        client.kill()
        client.wait()
    try:
        with pytest.raises(MountError, match=r"a dead FUSE mount is still there \(remove it with"):
            mount(MemFS(), str(mountpoint))
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_forcing_fusermount3_when_it_is_not_installed_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mounting, "FUSERMOUNT", "fusermount-not-installed")
    with pytest.raises(MountError, match=r"was asked for, and fusermount-not-installed is not"):
        mount(MemFS(), str(tmp_path), MountOptions(use_fusermount=True))


def test_an_unprivileged_user_without_fusermount3_learns_what_is_missing() -> None:
    with tempfile.TemporaryDirectory(prefix="fuse-nobody-") as top:
        os.chmod(top, 0o755)
        done = run_as_nobody(NO_FUSERMOUNT, top, isolated_device=False)
        device_closed = done.stdout.splitlines()
        done = run_as_nobody(NO_FUSERMOUNT, top, isolated_device=True)
        mount_refused = done.stdout.splitlines()
    assert device_closed == [
        f"cannot mount {top}: /dev/fuse: Permission denied (in a container add --device "
        "/dev/fuse), and fusermount-not-installed is not installed"
    ]
    assert mount_refused == [
        f"cannot mount {top}: not permitted to mount (needs CAP_SYS_ADMIN: docker --cap-add "
        "SYS_ADMIN), and fusermount-not-installed is not installed"
    ]


NO_FUSERMOUNT = textwrap.dedent("""
    import os, sys
    from fusion_client.fuse import mount, mounting, MountError
    from tests.fusion_client.fuse.memfs import MemFS
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    mounting.FUSERMOUNT = "fusermount-not-installed"
    try:
        mount(MemFS(), sys.argv[1])
    except MountError as e:
        print(e)
""")
