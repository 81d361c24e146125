"""`mgr server DIR`: run many `mgr` commands without paying torch's import each time.

A shell script of many small stages (the demo, the Makefile's tiny profile, a user's
sweep) spends 3-6 s per command importing torch and transformers before a small command
does a second of work. The server imports them once and forks a child per command: the
child takes the caller's stdin, stdout and stderr (passed over a Unix socket), working
directory, environment and arguments, runs `mgr` and exits with its status. Every command
still is its own process (files, pipes, exit codes and make -j behave as before); only
the imports are shared.

    mgr server build/.mgr &                 # writes build/.mgr/mgr, the client, when ready
    MGR=build/.mgr/mgr; $MGR prepare ...     # as fast as a fork
    $MGR -m mgr_cli.reproduce ...            # `python -m MODULE ...` the same way

The client runs the command as a plain process when the server is gone, so a script
never depends on it. The server stops on SIGTERM/SIGINT, when the process that started it
exits, or after --idle-minutes without a command. Linux only (fork, SCM_RIGHTS); the
socket and the client are the owner's alone (0700), since the server runs whatever its
socket is sent. The parent never runs a tensor operation or touches CUDA, so no thread
pool or device context exists at fork time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import typer

from mgr_cli.cli.common import handle_errors
from mgr_cli.errors import MgrError

# The client: a tiny script with no site-packages (starts in ~20 ms). It forwards
# SIGINT/SIGTERM/SIGHUP to the command's process and exits with its status.
CLIENT = '''#!{python} -S
import json, os, signal, socket, sys
argv = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect({sock!r})
except OSError:  # the server is gone: run the command as a plain process
    os.execv({python!r}, [{python!r}] + (argv if argv[:1] == ["-m"] else ["-m", "mgr_cli"] + argv))
msg = json.dumps({{"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
# a signal that comes before the command's pid waits (blocked) until it can be forwarded
SIGS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
signal.pthread_sigmask(signal.SIG_BLOCK, SIGS)
socket.send_fds(s, [len(msg).to_bytes(4, "big") + msg], [0, 1, 2])
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit(70)
        data += chunk
    return int.from_bytes(data, "big", signed=True)
pid = read(4)
for sig in SIGS:
    signal.signal(sig, lambda n, f: os.kill(pid, n))
signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGS)
sys.exit(read(4))
'''

# what a small command spends its time importing (the CLI modules import lazily)
PRELOAD = ("torch", "transformers", "transformers.models.t5.modeling_t5", "open_clip", "PIL.Image",
           "mgr_cli.decoding.evaluate", "mgr_cli.encoders.embed", "mgr_cli.quantize.stage",
           "mgr_cli.reproduce.report", "mgr_cli.tokens.stage", "mgr_cli.training.sasrec",
           "mgr_cli.training.trainer")


def supported() -> str | None:
    """None where the server can run, else why not."""
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds") or sys.platform != "linux":
        return f"mgr server needs Linux (fork and fd passing); this is {sys.platform}"
    return None


def _recv_exact(conn: socket.socket, n: int, first: bytes) -> bytes:
    data = first
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("client went away")
        data += chunk
    return data


def _child(conn: socket.socket) -> None:
    """In the fork: become the caller's `mgr` process. Never returns."""
    rc = 70
    try:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        data = _recv_exact(conn, 4, data)
        n = int.from_bytes(data[:4], "big")
        req = json.loads(_recv_exact(conn, 4 + n, data)[4:])
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        # a plain process's handlers before the client learns the pid and forwards signals
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.sendall(os.getpid().to_bytes(4, "big", signed=True))
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        import torch

        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        # the caller's PYTHONPATH, and (for -m, as python does) its working directory
        extra = [p for p in req["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = ([req["cwd"]] if req["argv"][:1] == ["-m"] else []) + extra
        rc = _run(req["argv"])
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        try:
            conn.sendall(int(rc).to_bytes(4, "big", signed=True))
        finally:
            os._exit(int(rc) & 0xFF)


def _run(argv: list[str]) -> int:
    """Run `mgr ARGV` (or `python -m MODULE ARGS` for `-m MODULE ARGS`); its exit status."""
    try:
        if argv[:1] == ["-m"] and len(argv) > 1:
            import runpy

            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            from mgr_cli.cli import main

            sys.argv = ["mgr", *argv]
            main()
        return 0
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        return 130
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1


def serve(folder: Path, idle_minutes: float = 30.0, on_ready=None) -> None:
    """Import, listen on FOLDER/mgr.sock, write the client FOLDER/mgr, fork per command."""
    import importlib

    why = supported()
    if why:
        raise MgrError(why)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    sock, client = folder / "mgr.sock", folder / "mgr"
    if len(str(sock.resolve())) > 100:
        raise MgrError(f"{folder}: its path is too long for a Unix socket; use a shorter folder")
    client.unlink(missing_ok=True)  # a previous server's: wait for this one's
    for module in PRELOAD:
        importlib.import_module(module)
    sock.unlink(missing_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock))
    os.chmod(sock, 0o600)
    srv.listen(64)
    srv.settimeout(1.0)
    tmp = folder / ".mgr.tmp"  # the client appears whole, once the socket listens
    tmp.write_text(CLIENT.format(python=sys.executable, sock=str(sock.resolve())))
    tmp.chmod(0o700)
    tmp.replace(client)
    if on_ready:
        on_ready(str(client))
    parent, idle = os.getppid(), 0.0
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda n, f: sys.exit(0))
    try:
        while idle < idle_minutes * 60 and os.getppid() == parent:
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                idle += 1.0
                continue
            idle = 0.0
            if os.fork() == 0:
                srv.close()
                _child(conn)
            conn.close()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
        sock.unlink(missing_ok=True)  # the client stays: it runs plain processes from now on


@handle_errors
def server_cmd(
    folder: Path = typer.Argument(..., help="Folder for the socket and the client FOLDER/mgr (made 0700)."),
    idle_minutes: float = typer.Option(30.0, help="Stop after this many minutes without a command."),
) -> None:
    """Serve `mgr` commands from forks of one process that imported torch once (Linux):
    scripts of many small stages run 3-6 s faster per command. Use FOLDER/mgr as `mgr`."""
    serve(folder, idle_minutes, on_ready=lambda c: print(c, flush=True))


class ForkServer:
    """`with ForkServer(folder) as mgr:` a server for the block; `mgr` is the client's path."""

    def __init__(self, folder: Path | str, idle_minutes: float = 30.0):
        self.folder, self.idle_minutes = Path(folder), idle_minutes

    def __enter__(self) -> str:
        code = ("import sys; from mgr_cli.cli.server import serve; "
                "serve(sys.argv[1], float(sys.argv[2]), lambda c: print(c, flush=True))")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(self.folder), str(self.idle_minutes)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.kill()
            raise MgrError(f"the mgr server in {self.folder} did not start")
        return line

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
