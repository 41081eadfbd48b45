"""Output files: written atomically (complete or absent) with the permissions the umask gives, and output
locations checked before the work that fills them.

    with atomic_write("results.json") as f:          # a text file
        json.dump(results, f)
    with atomic_output("model.ckpt") as temporary:    # for writers that take a path
        ms.save_checkpoint(entries, temporary)
    prepare_output_dir(args.output_dir, "--output_dir")  # before loading the model
    with atomic_output_dir("converted/val") as folder:  # a folder of files
        write_files(folder)

The data goes to a temporary file or folder beside `path` (same file system, so the rename is atomic), which
is renamed over `path` once complete and removed when writing fails. Temporary files from tempfile and some
libraries' own writers (MindSpore's checkpoints are 0400) get restrictive modes: the finished file gets
0666 minus the umask, as `open` gives.
"""
import contextlib
import logging
import os
import shutil
import tempfile
import uuid

import psutil

logger = logging.getLogger(__name__)


class OutputLocationError(ValueError):
    """An output file or folder that cannot be written; the message names it and the reason."""


def apply_umask(path):
    """Give the file `path` the permissions `open` gives a new file (0666 minus the umask), for files that a
    library wrote with its own (MindSpore writes checkpoints 0400 and MindRecord files 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside `path` (same extension, its folder created) to write; renames it over
    `path` when the block succeeds, removes it when it fails."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, extension = os.path.splitext(name)
    temporary = os.path.join(folder, f".{stem}.{uuid.uuid4().hex[:12]}.partial{extension}")
    try:
        yield temporary
        apply_umask(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """Yields a file opened with `mode` ("w" text in UTF-8, "wb" binary) that becomes `path` when the block
    succeeds (see atomic_output)."""
    with atomic_output(path) as temporary:
        with open(temporary, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f


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
