"""Telling a Ctrl-C from a ``KeyboardInterrupt`` raised on purpose.

skorch ends training quietly on ``KeyboardInterrupt``, for a user's Ctrl-C and for a
callback that stops training early (its ``EarlyStopping`` raises one, and its docs tell
callbacks to). The first leaves a net that is not fine-tuned, which must not be handed
on as if it were; the second is a finished fit. Only the signal handler knows which.
"""

import contextlib
import signal
import threading

__all__ = ["watching_ctrl_c"]


class _Seen:
    """Whether Ctrl-C arrived; ``known`` False where that cannot be told."""

    def __init__(self, known=True):
        self.known = known
        self.ctrl_c = False

    @property
    def maybe(self):
        """Whether a ``KeyboardInterrupt`` seen meanwhile may have been the user's."""
        return self.ctrl_c or not self.known


@contextlib.contextmanager
def watching_ctrl_c():
    """Note a Ctrl-C (SIGINT) that arrives while the block runs.

    The process's SIGINT handler is wrapped for the block: it still runs (and raises
    ``KeyboardInterrupt``, as Python's default handler does) after the arrival is noted.
    Outside the main thread no handler can be set, and none is needed: Python raises
    Ctrl-C's ``KeyboardInterrupt`` in the main thread only.

    Yields
    ------
    seen : object
        ``seen.maybe`` tells, after a ``KeyboardInterrupt``, whether it may have been
        the user's: a SIGINT arrived, or the handler is not Python's to wrap.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _Seen()
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        # SIG_IGN or SIG_DFL: Ctrl-C raises nothing (it is ignored or ends the process);
        # None: a handler set outside Python, which may raise for all we know.
        yield _Seen(known=previous is not None)
        return
    seen = _Seen()

    def noting(signum, frame):
        seen.ctrl_c = True
        return previous(signum, frame)

    signal.signal(signal.SIGINT, noting)
    try:
        yield seen
    finally:
        if signal.getsignal(signal.SIGINT) is noting:  # unless the block set its own
            signal.signal(signal.SIGINT, previous)
