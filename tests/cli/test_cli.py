"""The commands through typer's CliRunner (exit codes, exact error lines) and once as
real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from conftest import REPO, write
from mgr_cli import __version__
from mgr_cli.cli import app

runner = CliRunner()


def mgr(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_prepare_then_inspect(tmp_path, generic_dir):
    out = tmp_path / "d.jsonl"
    r = mgr("prepare", "generic", generic_dir, "-o", out, "--k-core", 3, "--json")
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)["stats"]
    assert stats["users"] == 4 and stats["items"] == 4 and stats["interactions"] == 16
    assert "examples train/valid/test" in r.stderr  # the human table goes to stderr

    r = mgr("inspect", out)
    assert r.exit_code == 0
    assert f"{out}: dataset artifact, schema v2, 8 records" in r.stdout
    assert f"made by:  mgr prepare generic {generic_dir} --out {out}" in r.stdout
    assert "--k-core 3" in r.stdout

    r = mgr("inspect", out, "--verify", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["kind"] == "dataset"
    assert "verified" in r.stderr


def test_existing_output_needs_force(tmp_path, generic_dir):
    out = tmp_path / "d.jsonl"
    assert mgr("prepare", "generic", generic_dir, "-o", out, "--k-core", 3).exit_code == 0
    r = mgr("prepare", "generic", generic_dir, "-o", out, "--k-core", 3)
    assert r.exit_code == 1
    assert r.stderr == f"Error: {out} already exists; pass --force to overwrite it\n"
    assert mgr("prepare", "generic", generic_dir, "-o", out, "--k-core", 3, "--force").exit_code == 0


def test_prepare_errors_are_one_line_and_write_nothing(tmp_path, generic_dir):
    out = tmp_path / "d.jsonl"
    write(generic_dir / "items.csv", "item_id,text\na,x\nb,\nc,z\nd,w\n")
    r = mgr("prepare", "generic", generic_dir, "-o", out, "--k-core", 3)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == ("Error: 1 items have empty text (e.g. 'b'); pass "
                                         "--empty-text drop to drop them or --empty-text keep "
                                         "to keep them")
    assert not out.exists() and list(tmp_path.glob(".d.jsonl.tmp*")) == []


def test_bad_usage_exits_2(tmp_path):
    r = mgr("prepare", "nonsense", tmp_path, "-o", tmp_path / "x")
    assert r.exit_code == 2


def test_inspect_verify_fails_on_tampering(tmp_path, generic_dir):
    out = tmp_path / "d.jsonl"
    mgr("prepare", "generic", generic_dir, "-o", out, "--k-core", 3)
    out.write_text(out.read_text().replace("text of a", "text of z"))
    r = mgr("inspect", out, "--verify")
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {out}: corrupted: content hash ")
    src = generic_dir / "items.csv"
    mgr("prepare", "generic", generic_dir, "-o", out, "--k-core", 3, "--force")
    src.write_text(src.read_text() + "\n")
    r = mgr("inspect", out, "--verify")
    assert r.exit_code == 1
    assert r.stderr == f"Error: source {src.resolve()}: changed since the artifact was made\n"


def test_demo_data_then_prepare(tmp_path):
    raw = tmp_path / "raw"
    r = mgr("demo-data", raw, "--items", 150, "--users", 60, "--seed", 3)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["items"] == 150
    assert mgr("demo-data", raw).exit_code == 1
    r = mgr("prepare", "generic", raw, "-o", tmp_path / "d.jsonl", "--k-core", 2, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stats"]["items_with_image"] > 50


def test_subprocess_module_and_version(tmp_path, generic_dir):
    r = subprocess.run([sys.executable, "-m", "mgr_cli", "--version"], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == f"mgr {__version__}"
    out = tmp_path / "d.jsonl"
    r = subprocess.run([sys.executable, "-m", "mgr_cli", "prepare", "generic", str(generic_dir),
                        "-o", str(out), "--k-core", "3", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stats"]["users"] == 4
    r = subprocess.run([sys.executable, "-m", "mgr_cli", "inspect", str(tmp_path / "nope.jsonl")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr == f"Error: {tmp_path / 'nope.jsonl'}: no such file\n"


def test_log_records_stay_one_line_off_a_terminal():
    """A redirected log keeps each record on one line (rich wrapped them at 80 columns,
    which broke `grep`/`jq` on a training log), and [..] in a record is not markup."""
    record = json.dumps({"step": 500, "hits@5": [0.021], "note": "x" * 150})
    r = subprocess.run([sys.executable, "-c", f"from mgr_cli.cli.common import log; log({record!r})"],
                       capture_output=True, text=True, cwd=REPO, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "MGR_LOG"})
    assert r.stderr == f"mgr: {record}\n"


def test_config_profile_sets_defaults_and_flags_override(tmp_path):
    profile = write(tmp_path / "p.toml", "[demo-data]\nitems = 120\nusers = 20\nmean-length = 6\n"
                    "[train]\nsteps = 3\n")
    r = mgr("demo-data", tmp_path / "a", "--config", profile, "--image-size", 16)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["items"] == 120 and summary["users"] == 20
    assert summary["config"]["mean_length"] == 6 and summary["config"]["image_size"] == 16
    r = mgr("demo-data", tmp_path / "b", "--items", 150, "--config", profile, "--image-size", 16)
    assert r.exit_code == 0 and json.loads(r.stdout)["items"] == 150  # the flag wins, in any position


def _flat(text: str) -> str:
    """typer's error box as one line."""
    return " ".join(text.replace("│", " ").split())


def test_config_profile_errors_exit_2(tmp_path):
    bad_key = write(tmp_path / "k.toml", "[demo-data]\nitemz = 5\n")
    r = mgr("demo-data", tmp_path / "a", "--config", bad_key)
    assert r.exit_code == 2 and "mgr demo-data has no option --itemz" in _flat(r.output)
    bad_toml = write(tmp_path / "t.toml", "[demo-data\n")
    r = mgr("demo-data", tmp_path / "a", "--config", bad_toml)
    assert r.exit_code == 2 and "is not valid TOML" in _flat(r.output)
    r = mgr("train", tmp_path / "x.safetensors", "-o", tmp_path / "run", "--config", tmp_path / "none.toml")
    assert r.exit_code == 2 and "cannot read" in _flat(r.output)
    assert not (tmp_path / "a").exists()


def test_shipped_profiles_name_only_real_options():
    # every table of every configs/*.toml is read by a command, without error
    import tomllib

    import typer

    from mgr_cli.cli.common import profile_tables

    def commands(group, path=()):
        for name, sub in group.commands.items():
            if hasattr(sub, "commands"):
                yield from commands(sub, path + (name,))
            else:
                yield path + (name,)

    def tables(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
                yield from tables(v, f"{prefix}{k}.")
            else:
                yield prefix + k

    argvs = list(commands(typer.main.get_command(app)))
    assert ("sasrec", "train") in argvs
    for path in sorted((REPO / "configs").glob("*.toml")):
        profile = tomllib.loads(path.read_text())
        read = set()
        for argv in argvs:
            used = [t for t, entries in profile_tables(profile, ".".join(argv)) if entries]
            if used:
                read |= set(used)
                r = mgr(*argv, "--config", path, "--help")
                assert r.exit_code == 0, (path, argv, r.output)
        assert set(tables(profile)) <= read, (path, set(tables(profile)) - read)


def test_a_profile_sets_a_sub_commands_defaults(tmp_path):
    cfg = write(tmp_path / "p.toml", "[sasrec.train]\nepochs = 3\nbogus = 1\n")
    r = mgr("sasrec", "train", "d.jsonl", "-o", tmp_path / "r", "--config", cfg)
    assert r.exit_code == 2 and "mgr sasrec train has no option --bogus" in r.output


def test_mgr_log_sends_log_lines_to_a_file(tmp_path, monkeypatch):
    log_file = tmp_path / "stage.log"
    monkeypatch.setenv("MGR_LOG", str(log_file))
    r = mgr("demo-data", tmp_path / "a", "--items", 100, "--users", 10, "--image-size", 8)
    assert r.exit_code == 0
    assert "mgr: wrote 100 items" in log_file.read_text() and "mgr:" not in r.stderr


def test_every_command_is_in_the_reference_and_the_readme_is_a_front_page():
    docs = (REPO / "docs" / "cli.md").read_text()
    names = [c.name for c in app.registered_commands]
    names += [f"{g.name} {c.name}" for g in app.registered_groups for c in g.typer_instance.registered_commands]
    missing = [n for n in names if f"mgr {n}" not in docs]
    assert not missing, f"commands missing from docs/cli.md: {missing}"
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


def test_fork_server_behaves_like_the_installed_command(fast_mgr, tmp_path):
    """`mgr server`'s client (the Makefile and demo tests' `mgr`): same output, exit codes
    and working directory as a fresh process."""
    import subprocess
    import sys

    real = [sys.executable, "-m", "mgr_cli"]
    for args in (["--version"], ["prepare", "nope", "x", "-o", "y"], ["inspect", "missing.jsonl"]):
        a = subprocess.run(real + args, capture_output=True, text=True, cwd=tmp_path)
        b = subprocess.run([fast_mgr, *args], capture_output=True, text=True, cwd=tmp_path)
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr), args
    assert subprocess.run([fast_mgr, "prepare", "nope"], capture_output=True).returncode == 2
    code = "import os, sys; print(os.getcwd(), os.environ['PROBE'], sys.stdin.read())"
    out = subprocess.run([fast_mgr, "-m", "mgr_cli.errors"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    probe = tmp_path / "probe.py"
    probe.write_text(code)
    out = subprocess.run([fast_mgr, "-m", "probe"], input="from stdin", capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PROBE": "env", "PYTHONPATH": str(tmp_path)})
    assert out.stdout.split() == [str(tmp_path), "env", "from", "stdin"], out.stderr


def test_fork_server_forwards_signals_and_its_client_outlives_it(tmp_path):
    """Ctrl-C on the client interrupts the command (exit 130, like a plain process); once the
    server stops, the same client runs commands as plain processes."""
    import signal
    import subprocess
    import sys

    from mgr_cli.cli.server import ForkServer

    probe = tmp_path / "sleeper.py"
    probe.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with ForkServer(tmp_path / "srv") as mgr:
        proc = subprocess.Popen([mgr, "-m", "sleeper"], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
    assert not (tmp_path / "srv" / "mgr.sock").exists()
    out = subprocess.run([mgr, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("mgr "), out.stderr
    plain = subprocess.run([sys.executable, "-m", "mgr_cli", "--version"], capture_output=True, text=True)
    assert out.stdout == plain.stdout


def test_fork_client_holds_a_signal_that_comes_before_the_commands_pid(tmp_path):
    """Ctrl-C while the client waits for the command's pid (a busy machine makes that window
    long) is forwarded once the pid arrives, not lost or fatal to the client."""
    import signal
    import socket

    from mgr_cli.cli.server import CLIENT

    sock_path, client = tmp_path / "s.sock", tmp_path / "mgr"
    client.write_text(CLIENT.format(python=sys.executable, sock=str(sock_path)))
    client.chmod(0o700)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    srv.settimeout(60)
    command = subprocess.Popen([sys.executable, "-c", "import time\ntry:\n print('ready', flush=True)\n"
                                " time.sleep(60)\nexcept KeyboardInterrupt:\n raise SystemExit(7)"],
                               stdout=subprocess.PIPE, text=True)
    assert command.stdout.readline().strip() == "ready"
    proc = subprocess.Popen([client, "--version"], stdout=subprocess.DEVNULL)
    try:
        conn, _ = srv.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)  # the request: the client now waits for the pid
            for fd in fds:
                os.close(fd)
            proc.send_signal(signal.SIGINT)
            assert proc.poll() is None or proc.wait(5) is None, "the client died of an early Ctrl-C"
            conn.sendall(command.pid.to_bytes(4, "big", signed=True))
            assert command.wait(30) == 7  # the held signal reached the command
            conn.sendall((130).to_bytes(4, "big", signed=True))
        assert proc.wait(30) == 130
    finally:
        for p in (proc, command):
            if p.poll() is None:
                p.kill()
        srv.close()
