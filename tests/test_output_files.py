"""Output files: complete or absent, the umask's permissions, and output locations checked before the work."""
import os
import stat

import pytest

from maskrcnn.atomic_files import atomic_write
from maskrcnn_pointrend.output_files import OutputLocationError, check_output_file, prepare_output_dir


def test_a_write_that_fails_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "results.json"
    umask = os.umask(0o077)
    try:
        with atomic_write(path) as f:
            f.write("old")
    finally:
        os.umask(umask)
    assert path.read_text() == "old" and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path) as f:
            f.write("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]


def test_output_locations_that_cannot_be_written_are_named(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputLocationError, match=f"--output_dir {tmp_path / 'a_file'} exists and is not a folder"):
        prepare_output_dir(tmp_path / "a_file", "--output_dir")
    with pytest.raises(OutputLocationError, match=f"--output_dir {tmp_path / 'a_file' / 'out'}: cannot write there"):
        prepare_output_dir(tmp_path / "a_file" / "out", "--output_dir")
    with pytest.raises(OutputLocationError, match="--output_dir /sys/pointrend_output: cannot write there"):
        prepare_output_dir("/sys/pointrend_output", "--output_dir")  # sysfs: no new files, not even for root
    with pytest.raises(OutputLocationError, match=f"--output {tmp_path} is a folder; give a file name"):
        check_output_file(tmp_path, "--output")
    prepare_output_dir(tmp_path / "new" / "out", "--output_dir")
    assert os.listdir(tmp_path / "new" / "out") == []
