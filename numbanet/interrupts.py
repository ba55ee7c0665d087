"""Ctrl-C delivered only where a fit's state is consistent.

A ``KeyboardInterrupt`` is raised by Python's SIGINT handler at whatever
bytecode the main thread is running when the signal is handled: between a
lock's acquire and the ``try`` that releases it, between two lines of the
bookkeeping after an epoch, in a ``finally`` clause.  No ordering of Python
statements is safe against that, so ``fit`` does not try: while it changes
the network it *holds* Ctrl-C (:func:`held`) -- the handler only notes the
signal -- and delivers it at the points where everything is committed
(:func:`poll`: between slices of the jitted loop, between row chunks of a
validation pass or a prediction), and at once inside code that changes
nothing of the network's or is the user's own (:func:`opened`: checking the
inputs, compiling, callbacks).

Holding applies only where Python delivers signals -- the main thread -- and
only while SIGINT has Python's default handler (a program or a notebook that
installed its own keeps it, untouched).  Elsewhere the three are no-ops.
"""

import signal
import threading

_MAIN = threading.main_thread().ident
_depth = 0  # nesting of held sections in the main thread
_caught = False  # a Ctrl-C arrived while held and has not been delivered yet
_open = False  # inside an opened section: deliver at once


def _hold(signum, frame):
    global _caught, _open
    if _open:
        # Delivered: the opened section is over (its end may not run to say so, if this lands there).
        _open = False
        raise KeyboardInterrupt
    _caught = True


class _Held:
    """Context manager: hold Ctrl-C for its body; deliver a held one at :func:`poll`, or at the end.

    At the end of the outermost section a Ctrl-C that is still held is raised
    as ``KeyboardInterrupt`` (unless an exception is already on its way out);
    SIGINT's handler is then Python's default again.  Nested in an
    :func:`opened` section, it holds for its body and delivers at its end.
    """

    __slots__ = ("active", "was_open")

    def __enter__(self):
        global _depth, _caught, _open
        self.active = False
        if threading.get_ident() != _MAIN:
            return self
        if not _depth:
            if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                return self
            _caught = _open = False
            # From this call on, a Ctrl-C is noted, not raised; one that arrived before it was raised
            # above, with nothing changed yet.
            signal.signal(signal.SIGINT, _hold)
        self.was_open = _open
        _open = False
        _depth += 1
        self.active = True
        return self

    def __exit__(self, exc_type, exc, tb):
        global _depth, _caught, _open
        if not self.active:
            return False
        _depth -= 1
        if _depth:
            _open = self.was_open
            if _open and exc_type is None:
                poll()
            return False
        deliver, _caught = _caught, False
        if signal.getsignal(signal.SIGINT) is _hold:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        # One noted while the handler was being put back is delivered too; one after raises by itself.
        deliver, _caught = (deliver or _caught) and exc_type is None, False
        if deliver:
            raise KeyboardInterrupt
        return False


class _Opened:
    """Context manager: inside a held section, deliver Ctrl-C at once (a held one on entry).

    For code after which nothing needs putting right: checks before anything
    changes, compiling, a user's callback.
    """

    __slots__ = ("was",)

    def __enter__(self):
        global _open
        self.was = _open
        if _depth:
            poll()
            _open = True
        return self

    def __exit__(self, exc_type, exc, tb):
        global _open
        _open = self.was
        return False


def held():
    """Return a context manager that holds Ctrl-C for its body (see :class:`_Held`)."""
    return _Held()


def opened():
    """Return a context manager that delivers Ctrl-C at once inside a held section (see :class:`_Opened`)."""
    return _Opened()


def poll():
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived during a held section; call where all is committed."""
    global _caught
    if _caught and _depth and threading.get_ident() == _MAIN:
        _caught = False
        raise KeyboardInterrupt
