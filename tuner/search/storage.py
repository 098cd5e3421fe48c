"""Where a search keeps its files: a folder on the driver's disk, and Ray's experiment storage.

`--storage DIR` puts both in DIR/NAME, as on one machine or a shared file system. `--storage
s3://bucket/prefix` (any URI pyarrow opens: s3, gs, abfs, hdfs) gives Ray's experiment state and
every trial checkpoint to that store, which all nodes reach; the driver's own files (the record,
the space, the outbox, finalize's run) stay in ./tuner_runs/NAME, and the record and the space are
copied to the store after every write so that a search can be resumed from another machine.
S3-compatible servers are reached the standard way: credentials and `AWS_ENDPOINT_URL` from the
environment (the same on every node).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from data.atomic import atomic_path
from data.errors import first_line
from tuner.contract import SearchError

LOCAL_HOME = Path("tuner_runs")


@dataclass(frozen=True)
class SearchStorage:
    """A search storage setting: `local` is always a folder; `remote` a URI when Ray's state goes elsewhere."""

    local: Path
    remote: str | None = None

    @classmethod
    def parse(cls, given: str | Path) -> "SearchStorage":
        """`--storage` as given: a folder (relative to the working directory) or a URI; a URI must open."""
        text = str(given)
        scheme = urlsplit(text).scheme
        if scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive, not a scheme
            return cls(Path(urlsplit(text).path if scheme == "file" else text).resolve())
        storage = cls(LOCAL_HOME.resolve(), text.rstrip("/"))
        storage.check_reachable()
        return storage

    @property
    def ray_path(self) -> str:
        """What Ray Tune takes as `storage_path`."""
        return self.remote or str(self.local)

    def experiment(self, name: str) -> str:
        """Ray Tune's experiment folder of search `name` (what `Tuner.restore` takes)."""
        return f"{self.ray_path}/{name}"

    def check_reachable(self) -> None:
        """A remote store that cannot be opened or listed is an error before anything is written."""
        import pyarrow.fs

        try:
            filesystem, path = pyarrow.fs.FileSystem.from_uri(self.remote)
            filesystem.get_file_info(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise SearchError(f"--storage {self.remote}: cannot open it ({first_line(exc)}); expected a folder "
                              f"or a reachable URI such as s3://bucket/prefix") from None

    def upload(self, name: str, files: list[Path]) -> None:
        """Copy `files` of the local search folder to the remote one (nothing to do without a remote)."""
        if self.remote is None:
            return
        filesystem, root = self._remote_folder(name)
        for local in files:
            with filesystem.open_output_stream(f"{root}/{local.name}") as out:
                out.write(local.read_bytes())

    def download(self, name: str, file_names: list[str]) -> bool:
        """Fetch `file_names` of the remote search folder into the local one; False if the remote lacks one."""
        if self.remote is None:
            return False
        import pyarrow.fs

        filesystem, root = self._remote_folder(name)
        infos = filesystem.get_file_info([f"{root}/{file}" for file in file_names])
        if any(info.type != pyarrow.fs.FileType.File for info in infos):
            return False
        folder = self.local / name
        folder.mkdir(parents=True, exist_ok=True)
        for file in file_names:
            with filesystem.open_input_stream(f"{root}/{file}") as source, atomic_path(folder / file) as tmp:
                tmp.write_bytes(source.read())
        return True

    def _remote_folder(self, name: str):
        import pyarrow.fs

        filesystem, path = pyarrow.fs.FileSystem.from_uri(self.remote)
        return filesystem, f"{path}/{name}"

