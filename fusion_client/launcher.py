"""The `fusion` command: mount S3 at /fusion, run the container's command, save every output.

    fusion [--] CMD ARGS...   mount, run CMD as a child, wait for uploads, unmount, exit as CMD
    fusion mount DIR          mount in the foreground until SIGINT/SIGTERM (for a host)
    fusion --version

Start-up cost matters (this runs at every container start), so only the standard modules needed
to spawn the child are imported up front; the file system is imported when mounting.
Exit status: CMD's own (128+N when killed by signal N); 174 when an upload finally failed (the
lost files are named on stderr); 127/126 when CMD cannot be found/executed; 1 on bad settings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fusion_client import __version__
from fusion_client.fuse.system import set_parent_death_signal

if TYPE_CHECKING:
    from fusion_client.fs.runtime import MountedFileSystem
    from fusion_client.settings import Settings


EXIT_IO_ERROR = 174  # Seqera Fusion's "I/O error" status: something written was not saved
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
# Python ignores these; a command must start with the default actions (`yes | head` needs SIGPIPE).
_PYTHON_IGNORED = (signal.SIGPIPE, signal.SIGXFSZ)
_SI_KERNEL = 0x80  # si_code of terminal-generated signals: the child got its own copy
_SAVED_PREFIX = "FUSION_SAVED_"
_LAUNCHER_NAMES = ("fusion", "/usr/bin/fusion")
_USAGE = "usage: fusion [--] COMMAND [ARGS...] | fusion mount DIR | fusion --version"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in ("--version", "-V"):
        print(f"fusion {__version__}")
        return 0
    if args[0] == "mount":
        if len(args) != 2:
            print(_USAGE, file=sys.stderr)
            return 2
        return _mount_foreground(args[1])
    command = _command(args)
    if not command:
        print(
            "fusion: no command to run: the image has neither Entrypoint nor Cmd, and none was "
            "given",
            file=sys.stderr,
        )
        print(_USAGE, file=sys.stderr)
        return 2
    return _run(command)


def _command(args: list[str]) -> list[str]:
    """The user's command: after an optional `--`, and without further launcher names.

    An augmented image's Entrypoint already is `fusion --`, and Nextflow submits `/usr/bin/fusion
    bash .command.run` as the command: one mount serves both, a nested one would shadow it.
    """
    while True:
        if args[:1] == ["--"]:
            args = args[1:]
        if args[:1] and args[0] in _LAUNCHER_NAMES:
            args = args[1:]
            continue
        return args


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the image meant for its command: the shim moved LD_PRELOAD and
    LD_LIBRARY_PATH aside (so they would not affect our interpreter); put them back."""
    env = dict(environ)
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH"):
        saved = env.pop(_SAVED_PREFIX + name, None)
        if saved is not None:
            env[name] = saved
    return env


def _run(command: list[str]) -> int:
    settings = _load_settings()
    if settings is None:
        return 1
    env = child_environment(os.environ)
    if settings.disabled:
        return _exec(command, env)
    mask = {*FORWARDED, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, mask)  # before any thread starts: all inherit it
    from fusion_client.fs.runtime import MountedFileSystem, MountUnavailable

    try:
        mounted = MountedFileSystem.start(settings)
    except MountUnavailable as exc:
        print(f"[fusion] warning: {exc}; running {command[0]} without /fusion", file=sys.stderr)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)
        return _exec(command, env)
    try:
        status = _supervise(command, env, mask)
    finally:
        saved = _close(mounted)
    return status if saved else EXIT_IO_ERROR


def _supervise(command: list[str], env: dict[str, str], mask: set[int]) -> int:
    """Spawn the command and wait for it, forwarding signals and reaping orphans as PID 1."""
    try:
        pid = _spawn(command, env)
    except OSError as exc:
        return _cannot_start(command[0], exc)
    reap_all = os.getpid() == 1
    while True:
        info = signal.sigwaitinfo(mask)
        if info.si_signo != signal.SIGCHLD:
            if info.si_code != _SI_KERNEL:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, info.si_signo)
            continue
        while True:
            try:
                done, status = os.waitpid(-1 if reap_all else pid, os.WNOHANG)
            except ChildProcessError:
                return 0
            if done == 0:
                break
            if done == pid:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code


def _spawn(command: list[str], env: dict[str, str]) -> int:
    """Fork and exec the command with default signal handling and an empty signal mask, set to
    be killed when the launcher dies (PR_SET_PDEATHSIG): a `kill -9` of fusion must not leave
    the command running on, reparented, writing into a mount that is gone. Raises the exec's
    OSError in the parent."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe work until exec
        try:
            os.close(read_end)
            set_parent_death_signal(signal.SIGKILL)
            if os.getppid() != parent:  # the launcher died before prctl took effect
                os._exit(128 + signal.SIGKILL)
            for signum in (*FORWARDED, *_PYTHON_IGNORED):
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.execvpe(command[0], command, env)
        except OSError as exc:
            os.write(write_end, str(exc.errno or 0).encode())
        finally:
            os._exit(127)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as errors:
        failed = errors.read()
    if failed:
        os.waitpid(pid, 0)
        code = int(failed)
        raise OSError(code, os.strerror(code))
    return pid


def _mount_foreground(directory: str) -> int:
    settings = _load_settings(mount=os.path.abspath(directory))
    if settings is None:
        return 1
    mask = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    from fusion_client.fs.runtime import MountedFileSystem, MountUnavailable

    try:
        mounted = MountedFileSystem.start(settings)
    except MountUnavailable as exc:
        print(f"[fusion] error: {exc}", file=sys.stderr)
        return 1
    mounted.wait_for_signal_or_unmount(mask)
    return 0 if _close(mounted) else EXIT_IO_ERROR


def _close(mounted: MountedFileSystem) -> bool:
    """Finish uploads and unmount; False (after saying what was lost) if anything was lost."""
    try:
        lost = mounted.close()
    except Exception as exc:  # never let a bug hide that uploads may be incomplete
        print(f"[fusion] error: could not complete the uploads: {exc!r}", file=sys.stderr)
        return False
    for line in lost:
        print(f"[fusion] error: not saved: {line}", file=sys.stderr)
    return not lost


def _load_settings(**overrides: str) -> Settings | None:
    from dataclasses import replace

    from fusion_client.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"[fusion] error: {exc}", file=sys.stderr)
        return None
    return replace(settings, **overrides) if overrides else settings


def _cannot_start(program: str, exc: OSError) -> int:
    """Report a command that could not start with the shell's statuses: 127 missing, 126 other
    (permission denied, exec format error, ...)."""
    if isinstance(exc, FileNotFoundError):
        print(f"fusion: {program}: command not found", file=sys.stderr)
        return 127
    print(f"fusion: {program}: {exc.strerror or exc}", file=sys.stderr)
    return 126


def _exec(command: list[str], env: dict[str, str]) -> int:
    for signum in _PYTHON_IGNORED:
        signal.signal(signum, signal.SIG_DFL)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        return _cannot_start(command[0], exc)
