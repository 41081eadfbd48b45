"""Progress bars that never share a line with a log record or an error message."""
import contextlib

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


@contextlib.contextmanager
def progress_bar(total, desc, unit):
    """A tqdm bar on stderr for `total` items: log records are printed above it while it runs, and it is
    closed, ending its line, however the block ends (so an error message that follows starts a line)."""
    with logging_redirect_tqdm(), tqdm(total=total, desc=desc, unit=unit) as bar:
        yield bar
