"""Stopping long work on SIGINT/SIGTERM: the first signal ends it after the current unit
(a stream's frame, a training step), a second one aborts at once.

Kept free of heavy imports: every ``mixqsam2`` command imports it to report an abort.
"""

from __future__ import annotations

import signal
import sys
import threading

from tqdm import tqdm


class StreamAborted(BaseException):
    """A second SIGINT/SIGTERM: the work was abandoned at once (a stream writes nothing; a
    training run keeps the state it saved last)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopOnSignal:
    """While active (main thread), the first SIGINT/SIGTERM asks for a stop after the current
    ``unit`` of work, a frame or a training step (``received`` holds it); a second one raises
    :class:`StreamAborted` at once, unless
    the output is already in place (:meth:`output_written`): then signals are ignored, and
    with ``ignore_after`` still ignored once the block has ended (for a command that ends
    then; otherwise the previous handlers come back).

    >>> import os, signal
    >>> with StopOnSignal() as stop:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     stop.received == signal.SIGTERM
    True
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, ignore_after: bool = False, unit: str = "frame"):
        self.received: int | None = None
        self.unit = unit
        self.written = False
        self._ignore_after = ignore_after
        self._previous: dict = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_IGN if self.written and self._ignore_after else handler)

    def output_written(self) -> None:
        """The output is complete and in place: no signal can abort it any more."""
        self.written = True

    def _handle(self, signum: int, frame) -> None:
        if self.written:
            return
        if self.received is not None:
            raise StreamAborted(signum)
        self.received = signum
        warn(f"{signal.Signals(signum).name}: stopping after this {self.unit} (send it again to abort at once)")


def warn(message: str) -> None:
    """``message`` on stderr as a warning, without breaking a progress bar."""
    tqdm.write(f"warning: {message}", file=sys.stderr)
