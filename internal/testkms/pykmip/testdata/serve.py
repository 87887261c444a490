"""Runs pykmip-server until standard input closes.

The test that started it holds the other end of standard input: when the
test ends, or its process dies, the pipe closes and this kills its whole
process group, which includes the multiprocessing manager that PyKMIP
starts beside the server.
"""
import os
import signal
import sys
import threading

from kmip.services.server import server


def watch():
    # os.read, not sys.stdin: a thread blocked in sys.stdin holds its lock,
    # and the processes that PyKMIP forks would deadlock closing stdin.
    while os.read(0, 4096):
        pass
    os.killpg(0, signal.SIGKILL)


threading.Thread(target=watch, daemon=True).start()
sys.argv = ["pykmip-server"] + sys.argv[1:]
server.main()
