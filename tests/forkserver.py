"""`mgr` commands in forks of one process that imported torch and transformers once.

The tests that drive the Makefile's paper pipeline and examples/demo.sh start about a
hundred `mgr` commands each; a fresh interpreter spends 3-6 s importing torch and
transformers before a tiny command does its second of work. Here one server process
imports them once and forks a child per command: the child takes the client's stdin,
stdout and stderr (passed over a Unix socket), working directory, environment and
arguments, runs `mgr` and exits; the client exits with the child's status. Every command
still runs in its own process (make's -j, files, exit codes and pipes behave as before);
only the imports are shared. `CLIENT -m MODULE ARGS` runs `python -m MODULE ARGS` the same
way (the Makefile's reports). Linux only (fork, SCM_RIGHTS); the parent runs no tensor
operation, so no thread pool exists at fork time.

    with ForkServer(tmp_dir) as mgr:      # mgr: the path of an executable client
        subprocess.run([mgr, "train", ...])
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

CLIENT = '''#!{python} -S
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({sock!r})
msg = json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
socket.send_fds(s, [len(msg).to_bytes(4, "big") + msg], [0, 1, 2])
rc = s.recv(4)
sys.exit(int.from_bytes(rc, "big", signed=True) if len(rc) == 4 else 70)
'''


PRELOAD = ("torch", "transformers", "transformers.models.t5.modeling_t5", "open_clip", "PIL.Image",
           "mgr_cli.cli", "mgr_cli.decoding.evaluate", "mgr_cli.encoders.embed", "mgr_cli.quantize.stage",
           "mgr_cli.reproduce.report", "mgr_cli.tokens.stage", "mgr_cli.training.sasrec",
           "mgr_cli.training.trainer")


def _recv_exact(conn: socket.socket, n: int, first: bytes) -> bytes:
    data = first
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("client went away")
        data += chunk
    return data


def _child(conn: socket.socket) -> None:
    """In the fork: become the client's `mgr` process. Never returns."""
    rc = 70
    try:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        data = _recv_exact(conn, 4, data)
        n = int.from_bytes(data[:4], "big")
        req = json.loads(_recv_exact(conn, 4 + n, data)[4:])
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        import torch

        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        argv = req["argv"]
        try:
            if argv[:1] == ["-m"] and len(argv) > 1:  # `python -m module ...` (the reports)
                import runpy

                sys.argv = [argv[1], *argv[2:]]
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
            else:
                from mgr_cli.cli import main

                sys.argv = ["mgr", *argv]
                main()
            rc = 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except KeyboardInterrupt:
            rc = 130
        except BaseException:
            import traceback

            traceback.print_exc()
            rc = 1
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


def serve(sock_path: str) -> None:
    # what a tiny command spends its time importing (the CLI modules import lazily)
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    os.chmod(sock_path, 0o600)
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        if os.fork() == 0:
            srv.close()
            _child(conn)
        conn.close()


class ForkServer:
    """Start the server in `folder`; the context value is the client's path."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def __enter__(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        sock = str(self.folder / "mgr.sock")
        self.proc = subprocess.Popen([sys.executable, __file__, sock], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the mgr fork server did not start (it printed {line!r})")
        client = self.folder / "mgr"
        client.write_text(CLIENT.format(python=sys.executable, sock=sock))
        client.chmod(0o700)
        return str(client)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


if __name__ == "__main__":
    serve(sys.argv[1])
