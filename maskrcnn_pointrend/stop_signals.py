"""What a long job does on the signals that stop it (SIGTERM from schedulers before they kill a job, SIGINT from
Ctrl-C): a training loop finishes its iteration and saves; a conversion removes its partial output."""
import contextlib
import signal
import sys

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Records SIGTERM and SIGINT instead of ending the process, for a loop to stop at a safe point:

        with StopSignals() as stop:
            for ...:
                ...
                if stop.received:
                    break

    `received` is the first signal (a signal.Signals) or None. A second signal acts as it would without this
    (SIGTERM ends the process, SIGINT raises KeyboardInterrupt), and so does any signal after the block."""

    def __enter__(self):
        self.received = None
        self._previous = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}
        return self

    def _restore(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _record(self, signum, _frame):
        self.received = signal.Signals(signum)
        self._restore()

    def __exit__(self, *_):
        self._restore()


def exit_status(received):
    """The exit status of a process ended by the signal `received`, as shells report it (128 + number)."""
    return 128 + int(received)


@contextlib.contextmanager
def sigterm_raises_system_exit():
    """Within the block SIGTERM raises SystemExit (status 143) where the program is, so that its cleanup (except
    and finally blocks) runs as it does for Ctrl-C."""

    def stop(signum, _frame):
        sys.exit(exit_status(signum))

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
