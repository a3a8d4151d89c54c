"""A process that has imported the command line once and forks a fresh `shiprail` per call.

The command line takes seconds of CPU to import (the Temporal client alone most of one),
and the CLI tests run it about a hundred times; on two cores that was most of their time.
Each call is still a process of its own, started as `main()` starts: its own argv and
environment, stdout and stderr to files, its exit code from `main()` (which may leave
through `os._exit`), signals to it alone. Only the imports are shared, done before any
Temporal runtime exists, so nothing but memory is inherited.

Protocol, one connection per call on a Unix socket: the caller sends one JSON line
{"argv", "env", "out", "err"}; a supervisor forked for the call answers {"pid": …} once the
command runs and {"code": …} once it ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any


def _command(request: dict[str, Any]) -> None:
    """In the forked child: become `shiprail ARGV` and never return."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["out"]), (2, request["err"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["shiprail", *request["argv"]]
    code = 1
    try:
        from shiprail.cli import main

        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _supervise(connection: socket.socket) -> None:
    """In the forked supervisor: run one call, report its pid and its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with connection, connection.makefile("rb") as lines:
        request = json.loads(lines.readline())
        pid = os.fork()
        if pid == 0:
            _command(request)
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        connection.sendall(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


def serve(path: str) -> None:
    # Everything a command may import, before the first fork.
    import shiprail.cli
    from shiprail.cli import _MODULES

    for name in _MODULES:
        __import__(f"shiprail.cli.{name}")
    del shiprail
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            try:
                _supervise(connection)
            finally:
                os._exit(0)
        connection.close()


if __name__ == "__main__":
    serve(sys.argv[1])
