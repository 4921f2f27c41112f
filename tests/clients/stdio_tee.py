"""Runs a stdio MCP server as a child and writes every line it receives on stdin to a file first
(appended, as received), so that a test sees exactly what reached a real server that does not
say it (server-everything does not echo `_meta`). Its stdout and stderr are the child's.

    python stdio_tee.py FILE COMMAND [ARG...]

It ends when its stdin closes (after closing the child's stdin and waiting for it), or on
SIGTERM (passed on to the child)."""

import signal
import subprocess
import sys

log, command = sys.argv[1], sys.argv[2:]
child = subprocess.Popen(command, stdin=subprocess.PIPE)


def stop(signum, _frame):
    child.send_signal(signum)
    child.wait()
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)

with open(log, "ab") as out:
    for line in sys.stdin.buffer:
        out.write(line)
        out.flush()
        try:
            child.stdin.write(line)
            child.stdin.flush()
        except BrokenPipeError:
            break
try:
    child.stdin.close()
except BrokenPipeError:
    pass
sys.exit(child.wait())
