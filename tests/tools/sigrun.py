#!/usr/bin/env python3
"""Run a command, signal it once it reached a chosen point, time its exit.

    sigrun.py [--when-glob GLOB] [--when-log FILE TEXT] [--delay S]
              [--timeout S] --out OUT --err ERR HOW -- COMMAND [ARG...]

The point is reached when a file matches GLOB (recursive "**" allowed: an
upload's temp file, a file in a restore's target) or when FILE contains
TEXT (the fault proxy's log saying it holds a request); without either,
at once.  DELAY seconds later (default 0) the command gets, by HOW:

    term      SIGTERM
    int       SIGINT
    twice     SIGTERM, and again 0.2 s later
    kill      SIGKILL
    tty-int   ^C written to the pseudo-terminal the command runs on (the
              tty driver sends SIGINT to its foreground process group);
              what the terminal showed goes to ERR, OUT stays empty

The command's stdout and stderr go to OUT and ERR.  When the point is not
reached within TIMEOUT seconds (default 60) or the command ended first,
the signal goes anyway (to a command still running).  Prints one line,
"RC SECONDS REACHED": the exit status (128 + N after signal N), the
seconds from the signal to the exit, and 1 or 0 for the point reached.
The integration tests that signal snapship share this runner (test_signals,
test_s3_signals, test_s3_stall, test_agent_concurrent).
"""
import argparse
import glob
import os
import pty
import select
import signal
import subprocess
import sys
import time


def reached(a):
    if a.when_glob and not glob.glob(a.when_glob, recursive=True):
        return False
    if a.when_log:
        try:
            with open(a.when_log[0], errors="replace") as f:
                return a.when_log[1] in f.read()
        except OSError:
            return False
    return True


def run_tty(a, deadline):
    """^C on a pseudo-terminal; returns (rc, seconds, reached)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(a.command[0], a.command)
        finally:
            os._exit(127)
    buf = b""
    settle = None
    ok = False
    while time.monotonic() < deadline:
        if settle is None and reached(a):
            ok = True
            settle = time.monotonic() + a.delay
        if settle is not None and time.monotonic() >= settle:
            break
        r, _, _ = select.select([fd], [], [], 0.02)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    t0 = time.monotonic()
    try:
        os.write(fd, b"\x03")
    except OSError:
        pass
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    _, st = os.waitpid(pid, 0)
    t1 = time.monotonic()
    with open(a.err, "wb") as e:
        e.write(buf)
    open(a.out, "wb").close()
    return os.waitstatus_to_exitcode(st), t1 - t0, ok


def run_plain(a, deadline):
    """A signal with kill(2); returns (rc, seconds, reached)."""
    with open(a.out, "wb") as o, open(a.err, "wb") as e:
        p = subprocess.Popen(a.command, stdout=o, stderr=e)
        ok = reached(a)
        while not ok and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
            ok = reached(a)
        if ok and a.delay > 0:
            time.sleep(a.delay)
        t0 = time.monotonic()
        if p.poll() is None:
            if a.how == "kill":
                p.kill()
            elif a.how == "int":
                p.send_signal(signal.SIGINT)
            else:
                p.send_signal(signal.SIGTERM)
            if a.how == "twice":
                time.sleep(0.2)
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        rc = p.wait()
        t1 = time.monotonic()
    return (128 - rc if rc < 0 else rc), t1 - t0, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--when-glob")
    ap.add_argument("--when-log", nargs=2, metavar=("FILE", "TEXT"))
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--err", required=True)
    ap.add_argument("how", choices=["term", "int", "twice", "kill", "tty-int"])
    argv = sys.argv[1:]
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        ap.error("no command given after --")
    a = ap.parse_args(argv[:argv.index("--")])
    a.command = argv[argv.index("--") + 1:]
    deadline = time.monotonic() + a.timeout
    run = run_tty if a.how == "tty-int" else run_plain
    rc, secs, ok = run(a, deadline)
    print(rc, "%.2f" % secs, int(ok))
    return 0


if __name__ == "__main__":
    sys.exit(main())
