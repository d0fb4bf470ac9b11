"""Adding a repository of replica metadata: what `replicadesk repo add` and the console's Add
Repository dialog both run.

A repository is a folder on a proxy of the source site, or on this host when no proxy serves it.
Its site is the proxy's own (a repository is served by a proxy of its site); a folder on this host
is made if missing and must be writable, so a first job does not fail on it. Every refusal is an
`InvalidSettingError` naming the setting at fault ("name", "path", "site", "proxy"), which the CLI
prints and the dialog shows beside that field.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import InvalidSettingError, NotFoundError
from core.model.infra import Repository
from core.store.store import Store


def repository_site(store: Store, site: str | None, proxy: str | None) -> str:
    """The site of a repository served by `proxy` (its site; `site` must agree when given), or
    `site` for a folder on this host."""
    if proxy is not None:
        try:
            served_by = store.proxies.get(proxy)
        except NotFoundError as e:
            raise InvalidSettingError("proxy", f"no proxy named {proxy!r}") from e
        if site is not None and site != served_by.site:
            raise InvalidSettingError(
                "site",
                f"proxy {served_by.name!r} is at site {served_by.site!r}, not {site!r}: a "
                "repository is served by a proxy of its own site",
            )
        return served_by.site
    if not site:
        raise InvalidSettingError("site", "give the site (or a proxy, whose site it takes)")
    return site


def refuse_duplicate_repository(store: Store, name: str) -> None:
    if any(r.name == name for r in store.repositories.list()):
        raise InvalidSettingError("name", f"a repository named {name!r} exists already")


def add_repository(store: Store, repo: Repository, *, check: bool = True) -> Repository:
    """Store `repo`; with `check`, a folder on this host is made if missing and must be
    writable (a proxy's folder is the proxy's to make). Nothing is stored when it fails."""
    refuse_duplicate_repository(store, repo.name)
    if repo.proxy is not None:
        repository_site(store, repo.site, repo.proxy)
    elif check:
        try:
            Path(repo.path).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InvalidSettingError("path", f"cannot make {repo.path}: {e.strerror or e}") from e
        if not os.access(repo.path, os.W_OK):
            raise InvalidSettingError("path", f"{repo.path} is not writable")
    store.repositories.add(repo)
    return repo
