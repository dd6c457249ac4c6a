"""The remote side of a rank: a tiny supervisor that binds the rank's life to its SSH channel.

Sent as the source of `python -c` (it imports nothing from dlcfn). It starts the rank in its own
session (setsid: pgid == pid), records the pgid in `<ctl>/<name>.pgid` for `dlcfn cancel`,
reports it on stderr, and kills the whole process group (TERM, then KILL after a grace period)
when its stdin reaches EOF: the controller closed the channel, the link died, or this host's
sshd was killed. When the rank exits by itself, stragglers left in its group are killed too.

Exit status: the rank's, or 128 + N when signal N killed it (reported on stderr as well).

usage: python -c SRC CTL_DIR NAME GRACE_S ARGV...
"""

import os
import signal
import subprocess
import sys
import threading
import time


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_group(pgid, grace):
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main():
    ctl, name, grace, argv = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    pgfile = os.path.join(ctl, name + ".pgid")
    with open(pgfile + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(pgfile + ".tmp", pgfile)
    sys.stderr.write("dlcfn-watchdog pgid=%d\n" % child.pid)
    sys.stderr.flush()

    def on_eof():
        while True:
            try:
                if not os.read(0, 65536):
                    break
            except OSError:
                break
        kill_group(child.pid, grace)

    threading.Thread(target=on_eof, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda *_: kill_group(child.pid, grace))
    rc = child.wait()
    kill_group(child.pid, grace)
    try:
        os.unlink(pgfile)
    except OSError:
        pass
    if rc < 0:
        try:
            sys.stderr.write("dlcfn-watchdog signal=%d\n" % -rc)
            sys.stderr.flush()
        except OSError:
            pass
        sys.exit(128 - rc)
    sys.exit(rc)


if __name__ == "__main__":
    main()
