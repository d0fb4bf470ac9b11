"""Datastore paths and files: browse, delete, make folders, and find a datastore on local disk.

A datastore path is ``"[datastore] folder/file.vmdk"``; names may hold spaces, brackets, ``#``,
``&``, ``+``, ``%`` and non-ASCII letters, so paths are parsed and built here and nowhere else.
File operations go through the datastore browser (search) and the FileManager (delete, move,
mkdir): the datastore HTTP interface's DELETE does nothing on the simulator (LAB.md).
`local_path` maps a datastore path to a file the proxy can open itself, for Direct storage
access: the datastore's ``info.url`` (a local folder on the simulator) unless the proxy mounts the
datastore elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import VSphereInvalidRequestError
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.models import Datastore
from core.vsphere.props import retrieve_one
from core.vsphere.tasks import wait

TIMEOUT = 600.0


@dataclass(frozen=True)
class DatastorePath:
    datastore: str
    path: str  # relative, "/"-separated, no leading "/"

    @classmethod
    def parse(cls, text: str) -> DatastorePath:
        """``"[ds slow #2] a b/c.vmdk"`` -> (``ds slow #2``, ``a b/c.vmdk``)."""
        if not text.startswith("["):
            raise VSphereInvalidRequestError(
                "read a datastore path", f"{text!r} does not start with '[datastore]'"
            )
        end = text.find("]")
        if end < 2:
            raise VSphereInvalidRequestError(
                "read a datastore path", f"{text!r} names no datastore"
            )
        return cls(text[1:end], text[end + 1 :].strip().lstrip("/"))

    def __str__(self) -> str:
        return f"[{self.datastore}] {self.path}" if self.path else f"[{self.datastore}]"

    def join(self, *parts: str) -> DatastorePath:
        return DatastorePath(self.datastore, str(PurePosixPath(self.path, *parts)).lstrip("/"))

    @property
    def folder(self) -> DatastorePath:
        parent = str(PurePosixPath(self.path).parent)
        return DatastorePath(self.datastore, "" if parent == "." else parent)

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class DatastoreFile:
    path: DatastorePath
    size: int
    modified: datetime | None
    is_folder: bool


def search_files(
    client: VSphereClient,
    datastore: str,
    folder: str = "",
    patterns: tuple[str, ...] = ("*",),
    recursive: bool = False,
    timeout: float = TIMEOUT,
) -> list[DatastoreFile]:
    """Files in `folder` of datastore `datastore` (moref) matching `patterns` (globs)."""
    ds = client.obj("Datastore", datastore)
    p = retrieve_one(client, ds, ["name", "browser"], f"read datastore {datastore}")
    root = DatastorePath(str(p.get("name", "")), folder.strip("/"))
    browser = p.get("browser")
    if browser is None:
        raise VSphereInvalidRequestError(f"search {root}", "the datastore has no browser")
    what = f"search {root} for {', '.join(patterns)}"
    spec = vim.host.DatastoreBrowser.SearchSpec(
        matchPattern=list(patterns),
        details=vim.host.DatastoreBrowser.FileInfo.Details(
            fileSize=True, modification=True, fileType=True
        ),
    )
    path = str(root) if root.path else f"[{root.datastore}]"
    if recursive:
        task = client.call(what, lambda: browser.SearchDatastoreSubFolders_Task(path, spec))
    else:
        task = client.call(what, lambda: browser.SearchDatastore_Task(path, spec))
    result = wait(client, task, what, timeout)
    results = result if isinstance(result, list) else [result] if result is not None else []
    out = []
    for r in results:
        base = DatastorePath.parse(str(r.folderPath))
        for f in r.file or ():
            out.append(_file(base, f))
    return sorted(out, key=lambda f: f.path.path)


def _file(base: DatastorePath, f: Any) -> DatastoreFile:
    modified = f.modification
    if isinstance(modified, datetime) and modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    return DatastoreFile(
        path=base.join(str(f.path)),
        size=int(f.fileSize or 0),
        modified=modified if isinstance(modified, datetime) else None,
        is_folder=isinstance(f, vim.host.DatastoreBrowser.FolderInfo),
    )


def delete_file(
    client: VSphereClient, datacenter: str, path: str, timeout: float = TIMEOUT
) -> None:
    """Delete a file or folder (with what is in it) by its datastore path."""
    what = f"delete {path}"
    DatastorePath.parse(path)
    fm = client.content.fileManager
    dc = client.obj("Datacenter", datacenter)
    task = client.call(what, lambda: fm.DeleteDatastoreFile_Task(name=path, datacenter=dc))
    wait(client, task, what, timeout)


def move_file(
    client: VSphereClient,
    datacenter: str,
    source: str,
    destination: str,
    force: bool = True,
    timeout: float = TIMEOUT,
) -> None:
    """Rename a datastore file (``force``: replacing `destination`): how a file uploaded under a
    temporary name takes its place in one step (an HTTP PUT truncates the file it replaces)."""
    what = f"move {source} to {destination}"
    DatastorePath.parse(source)
    DatastorePath.parse(destination)
    fm = client.content.fileManager
    dc = client.obj("Datacenter", datacenter)
    task = client.call(
        what,
        lambda: fm.MoveDatastoreFile_Task(
            sourceName=source,
            sourceDatacenter=dc,
            destinationName=destination,
            destinationDatacenter=dc,
            force=force,
        ),
    )
    wait(client, task, what, timeout)


def make_directory(client: VSphereClient, datacenter: str, path: str, parents: bool = True) -> None:
    what = f"make folder {path}"
    DatastorePath.parse(path)
    fm = client.content.fileManager
    dc = client.obj("Datacenter", datacenter)
    client.call(
        what,
        lambda: fm.MakeDirectory(name=path, datacenter=dc, createParentDirectories=parents),
    )


def local_path(
    datastore: Datastore, path: str | DatastorePath, mounts: Mapping[str, Path] | None = None
) -> Path:
    """Where the proxy finds a datastore file on its own file system (Direct storage access).

    `mounts` maps datastore names to where this proxy mounts them; by default the datastore's
    URL is taken as a local folder (true on the lab's simulator and for an NFS export mounted at
    the same path). A path that would leave the datastore's folder is refused.
    """
    p = path if isinstance(path, DatastorePath) else DatastorePath.parse(path)
    if p.datastore != datastore.name:
        raise VSphereInvalidRequestError(
            f"find {p} locally", f"it is on datastore {p.datastore!r}, not {datastore.name!r}"
        )
    if mounts is not None and datastore.name in mounts:
        root = Path(mounts[datastore.name])
    else:
        url = datastore.url
        for prefix in ("file://", "ds://"):
            url = url.removeprefix(prefix)
        root = Path(url)
    if not root.is_absolute():
        raise VSphereInvalidRequestError(
            f"find {p} locally", f"datastore URL {datastore.url!r} is not a local folder"
        )
    parts = PurePosixPath(p.path).parts
    if any(part in ("..", "") for part in parts) or PurePosixPath(p.path).is_absolute():
        raise VSphereInvalidRequestError(f"find {p} locally", "the path leaves the datastore")
    return root.joinpath(*parts)
