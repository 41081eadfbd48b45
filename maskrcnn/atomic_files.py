"""Files written atomically (complete or absent) with the permissions the umask gives.

    with atomic_write("results.json") as f:          # a text file
        json.dump(results, f)
    with atomic_output("model.ckpt") as temporary:    # for writers that take a path
        ms.save_checkpoint(entries, temporary)

The data goes to a temporary file beside `path` (same file system, so the rename is atomic), which is renamed
over `path` once complete and removed when writing fails. Temporary files from tempfile and some libraries' own
writers (MindSpore's checkpoints are 0400) get restrictive modes: the finished file gets 0666 minus the umask,
as `open` gives.
"""
import contextlib
import os
import uuid


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
