"""VMware disk files: descriptors, hosted sparse (KDMV) extents, and reading any source disk.

The first and last stage of the data path: `open_disk` reads a source disk (raw, flat VMDK,
sparse chains) for the movers; `SparseWriter` and `render_descriptor` write the VMDK files a
replica's restore points are made of, which VMware and qemu-img can open. Modules:
`descriptor` (the text format), `sparse` (the KDMV format), `cowd` (ESXi vmfsSparse deltas,
read only), `image` (readers over all of them).
"""

from core.vmdk.cowd import CowdExtent
from core.vmdk.descriptor import (
    NO_PARENT_CID,
    SECTOR,
    Descriptor,
    Extent,
    flat_descriptor,
    new_cid,
    parse_descriptor,
    render_descriptor,
)
from core.vmdk.image import DiskImage, RawImage, VmdkImage, open_disk
from core.vmdk.sparse import GRAIN_SIZE, SparseExtent, SparseWriter

__all__ = [
    "GRAIN_SIZE",
    "NO_PARENT_CID",
    "SECTOR",
    "CowdExtent",
    "Descriptor",
    "DiskImage",
    "Extent",
    "RawImage",
    "SparseExtent",
    "SparseWriter",
    "VmdkImage",
    "flat_descriptor",
    "new_cid",
    "open_disk",
    "parse_descriptor",
    "render_descriptor",
]
