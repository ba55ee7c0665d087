"""The progress display of a fit: a bar over epochs, and a live indicator while kernels compile.

tqdm draws it when installed (a widget in a notebook with ipywidgets, text
otherwise); without tqdm, plain lines on stderr.
"""

import contextlib
import importlib.util
import math
import sys
import threading
import time


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _tty():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def default_progress():
    """Show progress by default in a terminal or a notebook, not in logs or pipes."""
    return _tty() or _in_notebook()


def _tqdm_class():
    """Return tqdm's bar for this front end, or None without tqdm.

    In a notebook, the widget bar when ipywidgets is installed, else tqdm's
    text bar (tqdm.auto would warn ``IProgress not found`` and then draw text
    anyway); in a terminal, the text bar.
    """
    try:
        from tqdm import std
    except ImportError:
        return None
    if _in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        try:
            from tqdm.notebook import tqdm
        except ImportError:
            return std.tqdm
        return tqdm
    return std.tqdm


class Progress:
    """A bar over epochs showing the latest losses.

    tqdm when installed (a widget in a notebook with ipywidgets, its text bar
    elsewhere, never tqdm.auto's ``IProgress not found`` warning), otherwise a plain
    line when an epoch ends, at most every :attr:`PLAIN_INTERVAL` seconds, and within an epoch
    that runs longer than :attr:`PARTIAL_INTERVAL` seconds.

    The training engine calls :meth:`update` between slices of the jitted
    loop with the epochs done so far as a float (3.25 is a quarter into the
    fourth epoch), so a long epoch shows progress and a short one costs no
    Python round trip of its own.
    """

    #: Seconds between two plain-text progress lines at epoch ends.
    PLAIN_INTERVAL = 1.0
    #: Seconds after which a plain-text line shows progress within a long epoch.
    PARTIAL_INTERVAL = 5.0
    #: Seconds between two redraws of the compile indicator.
    TICK = 1.0

    def __init__(self, total, enabled):
        self.enabled = enabled
        self.bar = None
        self.start = time.perf_counter()
        self.last_line = -math.inf
        self.total = total
        self.done = 0.0
        if enabled:
            tqdm = _tqdm_class()
            if tqdm is not None:
                self.bar = tqdm(
                    total=total,
                    unit="epoch",
                    leave=True,
                    bar_format="{l_bar}{bar}| {n:.6g}/{total_fmt} epochs [{elapsed}<{remaining}{postfix}]",
                )

    def update(self, done, history):
        """Show ``done`` epochs (a float) and the latest losses in ``history``."""
        done = round(done, 2)
        if not self.enabled or done <= self.done:
            return
        stats = {}
        if history.loss:
            stats["loss"] = history.loss[-1]
        if history.val_loss:
            stats["val_loss"] = history.val_loss[-1]
        if history.val_accuracy:
            stats["val_acc"] = history.val_accuracy[-1]
        if self.bar is not None:
            if stats:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items()}, refresh=False)
            self.bar.update(done - self.done)
        else:
            now = time.perf_counter()
            epoch_ended = int(done) > int(self.done)
            if (
                (epoch_ended and now - self.last_line >= self.PLAIN_INTERVAL)
                or done >= self.total
                or now - max(self.last_line, self.start) >= self.PARTIAL_INTERVAL
            ):
                self.last_line = now
                text = "  ".join(f"{k} {v:.4g}" for k, v in stats.items())
                print(f"epoch {done:g}/{self.total}  {text}  ({now - self.start:.1f}s)", file=sys.stderr)
        self.done = done

    def note(self, text):
        """Print one line of text beside the bar (to stderr), when enabled."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def restart(self):
        """Restart the clock (after a compile), so elapsed times and rates count training only."""
        self.start = time.perf_counter()
        if self.bar is not None:
            self.bar.reset(total=self.total)
            self.bar.update(self.done)

    @contextlib.contextmanager
    def compiling(self, text="compiling numbanet's kernels (first run only)"):
        """Show ``text`` and the seconds passing while the block runs, then restart the clock.

        The kernels compile in this thread, holding it for seconds to a
        minute; a daemon thread redraws the bar's description (or, without
        tqdm, a line on a terminal) every :attr:`TICK` seconds, so a first
        fit never looks frozen.  The elapsed time and rates of the bar count
        training only.
        """
        if not self.enabled:
            yield
            return
        self.note(f"{text}...")
        stop = threading.Event()
        start = time.perf_counter()
        ticker = threading.Thread(target=self._tick, args=(text, start, stop), daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            self._show_compiling(f"{text}: done in {time.perf_counter() - start:.1f} s", final=True)
            self.restart()

    def _tick(self, text, start, stop):
        while not stop.wait(self.TICK):
            self._show_compiling(f"{text}: {time.perf_counter() - start:.0f} s")

    def _show_compiling(self, text, final=False):
        if self.bar is not None:
            self.bar.set_description_str("" if final else text, refresh=True)
            if final:
                self.bar.write(text, file=sys.stderr)
        elif final:
            print(text, file=sys.stderr, flush=True)
        elif _tty():
            print(f"\r{text}", end="", file=sys.stderr, flush=True)

    def close(self):
        """Close the bar (a no-op without tqdm)."""
        if self.bar is not None:
            self.bar.close()
