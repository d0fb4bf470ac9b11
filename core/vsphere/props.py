"""Reading properties through the PropertyCollector: the only way core.vsphere reads vSphere.

pyVmomi's attribute accessors fetch one property per round trip, and on the lab's simulator an
unset property read that way (``vm.snapshot`` of a VM without snapshots) makes vcsim panic and
drop the connection (LAB.md). So everything here asks RetrieveContents for explicit property
paths, many objects at once; an unset property is simply absent from the answer. Container views
made for a read are always destroyed, whatever happens. Values come as pyVmomi's objects;
`core.vsphere.fastprops` reads the same requests' answers as plain values, for the inventory's
large one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from core.vsphere._pyvmomi import vim, vmodl
from core.vsphere.connection import VSphereClient

PC = vmodl.query.PropertyCollector
Props = dict[str, Any]


def retrieve(
    client: VSphereClient, objs: Sequence[Any], paths: Sequence[str], what: str = ""
) -> dict[str, Props]:
    """moref -> {path: value} for `objs` (all of one or several types), in one round trip."""
    if not objs:
        return {}
    kinds: dict[type, Any] = {}
    for o in objs:
        kinds.setdefault(type(o), o)
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=o, skip=False) for o in objs],
        propSet=[PC.PropertySpec(type=k, pathSet=list(paths)) for k in kinds],
    )
    pc = client.content.propertyCollector
    contents = client.call(
        what or f"read {', '.join(paths)} of {len(objs)} objects",
        lambda: pc.RetrieveContents([spec]),
    )
    return {c.obj._moId: {p.name: p.val for p in c.propSet or []} for c in contents or []}


def retrieve_one(client: VSphereClient, obj: Any, paths: Sequence[str], what: str = "") -> Props:
    return retrieve(client, [obj], paths, what).get(obj._moId, {})


def collect(
    client: VSphereClient,
    paths: Mapping[type, Sequence[str]],
    container: Any = None,
    what: str = "read the inventory",
) -> list[tuple[Any, Props]]:
    """Every object of the given types below `container` (default: the root folder), with the
    paths asked for each type, through one ContainerView and one RetrieveContents."""
    with container_view(client, list(paths), container, what) as view:
        pc = client.content.propertyCollector
        spec = view_spec(view, paths)
        contents = client.call(what, lambda: pc.RetrieveContents([spec]))
        return [(c.obj, {p.name: p.val for p in c.propSet or []}) for c in contents or []]


@contextmanager
def container_view(
    client: VSphereClient, kinds: Sequence[type], container: Any = None, what: str = ""
) -> Iterator[Any]:
    """A ContainerView of `kinds` below `container` (default: the root folder), recursive;
    destroyed at the end whatever happens."""
    content = client.content
    root = container if container is not None else content.rootFolder
    view = client.call(
        what, lambda: content.viewManager.CreateContainerView(root, list(kinds), True)
    )
    try:
        yield view
    finally:
        client.call(f"{what} (clean up)", view.Destroy)


def view_spec(view: Any, paths: Mapping[type, Sequence[str]]) -> Any:
    """The FilterSpec reading `paths` (per type) of every object a ContainerView holds."""
    return PC.FilterSpec(
        objectSet=[
            PC.ObjectSpec(
                obj=view,
                skip=True,
                selectSet=[
                    PC.TraversalSpec(
                        name="view", type=vim.view.ContainerView, path="view", skip=False
                    )
                ],
            )
        ],
        propSet=[PC.PropertySpec(type=k, pathSet=list(p)) for k, p in paths.items()],
    )


def morefs(objs: Iterable[Any] | None) -> tuple[str, ...]:
    return tuple(o._moId for o in objs or ())


def moref(obj: Any) -> str:
    return str(obj._moId) if obj is not None else ""
