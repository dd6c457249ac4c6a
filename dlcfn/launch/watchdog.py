"""The remote side of a rank: a tiny supervisor that binds the rank's life to its SSH channel.

Sent as the source of `python -I -S -c` (it imports nothing from dlcfn, and only small standard
modules so that it starts in a few ms). It forks the rank into its own session (setsid:
pgid == pid), records the pgid in `<ctl>/<name>.pgid` for `dlcfn cancel`, reports it on stderr,
and kills the whole process group (TERM, then KILL after a grace period) when its stdin reaches
EOF: the controller closed the channel, the link died, or this host's sshd was killed. When the
rank exits by itself, stragglers left in its group are killed too. It is the child subreaper of
the rank's processes, so it reaps orphans at once: a zombie would count as "still running" until
some init got round to it.

Exit status: the rank's, or 128 + N when signal N killed it (reported on stderr as well).

usage: python -I -S -c SRC CTL_DIR NAME GRACE_S ARGV...
"""

import os
import signal
import sys
import time


class Wake(Exception):
    """Raised by the signal handlers (with the signal number) to break out of the read of stdin."""


STOP_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def reap(pid, box):
    """Reap every exited child (the rank, orphans of its group); box gets the rank's status."""
    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not done:
            return
        if done == pid:
            box.append(status)


def become_subreaper():
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER (Linux)
    except (ImportError, OSError, AttributeError):
        pass  # not Linux: orphans go to init, as without a watchdog


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_group(pgid, grace, box):
    """TERM the group, KILL it after `grace`; return once nothing of it is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap(pgid, box)
            if not group_alive(pgid):
                return
            time.sleep(0.01)


def spawn(argv):
    """fork + setsid + exec, stdin from /dev/null, stderr into stdout. The child has no Python
    signal handlers (they are installed after the fork) and gets an empty signal mask."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores SIGPIPE; a rank should not
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # the mask survives exec: clear it
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(1, 2)
        os.execvp(argv[0], argv)
    except OSError as e:
        os.write(2, ("dlcfn-watchdog: cannot run %s: %s\n" % (argv[0], e)).encode())
    os._exit(127)


def wait_for_end(pid, box):
    """Block until stdin EOF, a stop signal, or the rank's exit (then box holds its status)."""
    while not box:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            while os.read(0, 65536):
                pass
            return  # EOF: the channel is gone
        except Wake as w:
            if w.args[0] != signal.SIGCHLD:
                return  # told to stop
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            reap(pid, box)  # an orphan's exit only: keep waiting
        except OSError:
            return


def main():
    ctl, name, grace, argv = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]

    def wake(signum, _frame):
        raise Wake(signum)

    become_subreaper()
    # Hold the signals that end the wait until we are inside it: their handlers raise Wake,
    # which must happen in wait_for_end, not while the pgid is being recorded.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = spawn(argv)
    for sig in STOP_SIGNALS:
        signal.signal(sig, wake)
    pgfile = os.path.join(ctl, name + ".pgid")
    with open(pgfile + ".tmp", "w") as f:
        f.write(str(pid))
    os.replace(pgfile + ".tmp", pgfile)
    os.write(2, b"dlcfn-watchdog pgid=%d\n" % pid)
    box = []
    wait_for_end(pid, box)
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGCHLD else signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    reap(pid, box)
    kill_group(pid, grace, box)  # after EOF/stop: the rank; after its exit: its stragglers
    if not box:  # the rank left its group (setsid/setpgid): it still dies with the job
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        box.append(os.waitpid(pid, 0)[1])
    rc = os.waitstatus_to_exitcode(box[0])
    try:
        os.unlink(pgfile)
    except OSError:
        pass
    if rc < 0:
        try:
            os.write(2, b"dlcfn-watchdog signal=%d\n" % -rc)
        except OSError:
            pass
        os._exit(128 - rc)
    os._exit(rc)


if __name__ == "__main__":
    main()
