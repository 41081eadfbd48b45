"""Output locations checked before the work that fills them, and folders written atomically (files: see
maskrcnn.atomic_files).

    prepare_output_dir(args.output_dir, "--output_dir")  # before loading the model
    with atomic_output_dir("converted/val") as folder:  # a folder of files
        write_files(folder)

A folder is filled beside `path` and renamed into place once complete; a killed process's leftovers are removed
by remove_stale_output_dirs.
"""
import contextlib
import logging
import os
import shutil
import tempfile

import psutil

logger = logging.getLogger(__name__)


class OutputLocationError(ValueError):
    """An output file or folder that cannot be written; the message names it and the reason."""


def _beside(path, kind):
    """-> the folder of this process and `kind` (incomplete, replaced) beside the folder `path`."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{kind}-{os.getpid()}")


@contextlib.contextmanager
def atomic_output_dir(path, check_free=None):
    """Yields a new folder beside the folder `path` to fill. When the block succeeds, `check_free()` is called
    (when given; it raises when what is at `path` must stay) and the folder takes the place of `path` and of
    what was there; when either fails (SystemExit and KeyboardInterrupt included) the folder is removed. What a
    killed process leaves is for remove_stale_output_dirs."""
    temporary = _beside(path, "incomplete")
    os.makedirs(temporary)
    try:
        yield temporary
        if check_free is not None:
            check_free()
        replaced = None
        if os.path.lexists(path):
            replaced = _beside(path, "replaced")
            os.rename(path, replaced)
        os.rename(temporary, path)
        if replaced and os.path.isdir(replaced):
            shutil.rmtree(replaced)
        elif replaced:
            os.remove(replaced)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def remove_stale_output_dirs(path):
    """Removes the folders that atomic_output_dir(path) left behind in processes that were killed."""
    parent, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(parent):
        return
    for entry in os.listdir(parent):
        kind, _, pid = entry.rpartition("-")
        if kind in (f".{name}.incomplete", f".{name}.replaced") and pid.isdigit() and not psutil.pid_exists(int(pid)):
            logger.warning("removing %s, left by an interrupted run", os.path.join(parent, entry))
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def prepare_output_dir(path, what):
    """Create the folder `path` (given as option `what`) if needed and check that files can be created in
    it; OutputLocationError naming it otherwise."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputLocationError(f"{what} {path} exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check"):
            pass
    except OSError as e:
        raise OutputLocationError(f"{what} {path}: cannot write there ({e.strerror or e})") from None


def check_output_file(path, what):
    """Check that the file `path` (given as option `what`) can be written: not a folder, in a folder that can
    be created and written; OutputLocationError naming it otherwise."""
    if os.path.isdir(path):
        raise OutputLocationError(f"{what} {path} is a folder; give a file name")
    prepare_output_dir(os.path.dirname(os.path.abspath(path)), f"{what} {path}: its folder")
