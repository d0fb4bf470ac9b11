"""Datastore paths, browsing, file operations and the HTTP transport (Range GET, whole PUT),
with names full of odd characters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import VSphereFileError, VSphereInvalidRequestError
from core.vsphere import datastore
from core.vsphere.datastore import DatastorePath, local_path
from core.vsphere.models import Datacenter, Datastore
from core.vsphere.transfer import DatastoreHttp
from tests.core.vsphere.conftest import ODD, Site


def test_paths() -> None:
    p = DatastorePath.parse("[ds slow #2] a b/c [1] & +%é.vmdk")
    assert (p.datastore, p.path, p.name) == (
        "ds slow #2",
        "a b/c [1] & +%é.vmdk",
        "c [1] & +%é.vmdk",
    )
    assert str(p) == "[ds slow #2] a b/c [1] & +%é.vmdk"
    assert str(p.folder) == "[ds slow #2] a b" and str(p.folder.folder) == "[ds slow #2]"
    assert str(DatastorePath.parse("[ds]").join("x", "y.vmdk")) == "[ds] x/y.vmdk"
    with pytest.raises(VSphereInvalidRequestError):
        DatastorePath.parse("ds/x.vmdk")


def test_files_and_http_round_trip(site: Site, tmp_path: Path) -> None:
    c = site.client
    inv = site.inventory()
    dc = inv.named(Datacenter, "Prod DC")
    ds = inv.named(Datastore, "ds-fast", dc.moref)
    folder = "replicadesk test/odd #1 & +% é"
    datastore.make_directory(c, dc.moref, f"[ds-fast] {folder}")
    local = local_path(ds, f"[ds-fast] {folder}")
    assert local.is_dir() and local == site.sim.datastore("ds-fast", "Prod DC").path / folder

    data = os.urandom(3 << 20) + b"tail"
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    name = f"[ds-fast] {folder}/disk [1] & +%.vmdk"
    sent: list[int] = []
    with DatastoreHttp(c, "Prod DC", "ds-fast") as h:
        # The session cookie travels with every request, as a real vCenter requires.
        assert c.session_cookie.startswith("vmware_soap_session=") and ";" not in c.session_cookie
        assert h.url(name).endswith("?dcPath=Prod%20DC&dsName=ds-fast")
        assert "disk%20%5B1%5D%20%26%20%2B%25.vmdk" in h.url(name)
        assert h.upload(name, src, progress=sent.append) == len(data) and sent[-1] == len(data)
        assert local_path(ds, name).read_bytes() == data  # the same bytes on the datastore
        assert h.size(name) == len(data)
        buf = bytearray(1 << 20)
        for offset in (0, 12345, (3 << 20) - 100):
            n = h.read_into(name, offset, buf)
            assert bytes(buf[:n]) == data[offset : offset + len(buf)]
        assert h.read_into(name, len(data) + 10, buf) == 0  # past the end
        view = memoryview(bytearray(4096))
        assert (
            h.read_into(name, 4096, view[100:200]) == 100
            and bytes(view[100:200]) == data[4096:4196]
        )
        h.upload_bytes(name, b"short")
        assert h.read(name, 0, 100) == b"short"
        out = tmp_path / "out.bin"
        assert h.download(f"{folder}/disk [1] & +%.vmdk", out) == 5 and out.read_bytes() == b"short"
        with pytest.raises(VSphereFileError, match="not found"):
            h.read(f"[ds-fast] {folder}/missing.vmdk", 0, 10)

    found = datastore.search_files(c, ds.moref, folder, ("*.vmdk",))
    assert [(f.path.name, f.size) for f in found] == [("disk [1] & +%.vmdk", 5)]
    vm_files = datastore.search_files(c, ds.moref, ODD)
    assert f"{ODD}.vmx" in {f.path.name for f in vm_files}
    everything = datastore.search_files(c, ds.moref, "replicadesk test", recursive=True)
    assert any(f.path.name == "disk [1] & +%.vmdk" for f in everything)

    datastore.delete_file(c, dc.moref, f"[ds-fast] {folder}")
    assert not local.exists()
    with pytest.raises(VSphereFileError):
        datastore.delete_file(c, dc.moref, f"[ds-fast] {folder}")


def test_local_path_is_kept_inside_the_datastore(site: Site, tmp_path: Path) -> None:
    ds = site.inventory().named(Datastore, "ds slow #2")
    with pytest.raises(VSphereInvalidRequestError, match="leaves"):
        local_path(ds, "[ds slow #2] a/../../etc/passwd")
    with pytest.raises(VSphereInvalidRequestError, match="not 'ds slow #2'"):
        local_path(ds, "[ds-fast] x.vmdk")
    assert (
        local_path(ds, "[ds slow #2] a/b.vmdk", {"ds slow #2": tmp_path}) == tmp_path / "a/b.vmdk"
    )
