"""Atomic file writing (data.atomic.atomic_path) on real files: all of the new file or none of it."""

import json
import os
import stat

import h5py
import numpy as np
import pytest

from data.atomic import atomic_path


def test_a_finished_write_replaces_the_destination_and_leaves_no_temporary(tmp_path):
    """The temporary file sits beside the destination, which keeps its old content until the block ends."""
    dest = tmp_path / "record.json"
    dest.write_text('{"old": true}')
    with atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path and tmp != dest and tmp.is_file()
        tmp.write_text('{"new": true}')
        assert json.loads(dest.read_text()) == {"old": True}  # a reader meanwhile sees the old file
    assert json.loads(dest.read_text()) == {"new": True}
    assert os.listdir(tmp_path) == ["record.json"]
    plain = tmp_path / "plain"
    plain.write_text("")
    # The mode `open` gives under the user's umask, not mkstemp's private 0o600.
    assert stat.S_IMODE(dest.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_the_users_umask_decides_the_mode(tmp_path):
    previous = os.umask(0o077)
    try:
        with atomic_path(tmp_path / "private.json") as tmp:
            tmp.write_text("{}")
        os.umask(0o002)
        with atomic_path(tmp_path / "shared.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o664


def test_writers_that_take_a_file_name_can_write_the_temporary(tmp_path):
    """h5py opens the yielded path by name ("w" truncates the empty temporary file)."""
    dest = tmp_path / "out" / "brain_test1.h5"
    dest.parent.mkdir()
    with atomic_path(dest) as tmp, h5py.File(tmp, "w") as f:
        f["reconstruction"] = np.ones((2, 3, 4), np.float32)
    with h5py.File(dest, "r") as f:
        assert f["reconstruction"].shape == (2, 3, 4)
    assert os.listdir(dest.parent) == ["brain_test1.h5"]


@pytest.mark.parametrize("existing", [True, False])
def test_a_failed_write_leaves_the_destination_untouched_and_no_temporary(tmp_path, existing):
    """An exception in the block propagates; the destination stays as it was (or absent) and the
    half-written temporary file is removed."""
    dest = tmp_path / "bank.npz"
    if existing:
        dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert (dest.read_bytes() == b"old") if existing else not dest.exists()
    assert os.listdir(tmp_path) == (["bank.npz"] if existing else [])


def test_without_overwrite_an_existing_destination_is_refused_and_kept(tmp_path):
    """overwrite=False writes a new file but raises FileExistsError for an existing one, which keeps its
    content; no temporary file stays behind either way."""
    dest = tmp_path / "bank.npz"
    with atomic_path(dest, overwrite=False) as tmp:
        tmp.write_bytes(b"first")
    assert dest.read_bytes() == b"first"
    with pytest.raises(FileExistsError, match="bank.npz: exists; pass overwrite=True"):
        with atomic_path(dest, overwrite=False) as tmp:
            tmp.write_bytes(b"second")
    assert dest.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["bank.npz"]


def test_a_missing_folder_is_an_error_not_created(tmp_path):
    """The destination's folder must exist: callers decide whether to create it."""
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "missing" / "x.json"):
            pass
    assert os.listdir(tmp_path) == []
