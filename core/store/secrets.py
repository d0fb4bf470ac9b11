"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key file beside the database.

The database only ever holds Fernet tokens; the key lives in a separate file (by default
`<database>.key`), created with mode 0600 on first use and refused when others may read it,
the way ssh treats private keys. Copying the database alone (a backup, a bug report) discloses
no password. Losing the key file makes the stored passwords unreadable, and the error says so:
re-enter them with `replicadesk server add`.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.errors import SecretError
from core.model.secret import Secret


class SecretBox:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def _load(self, create: bool) -> Fernet:
        with self._lock:
            if self._fernet is None:
                if create and not self.key_file.exists():
                    self._create()
                self._fernet = Fernet(self._read())
            return self._fernet

    def _create(self) -> None:
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # another process made it first: use theirs
        try:
            os.write(fd, Fernet.generate_key() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read(self) -> bytes:
        try:
            info = self.key_file.stat()
        except FileNotFoundError:
            raise SecretError(
                self.key_file, "is missing: stored passwords cannot be read; enter them again"
            ) from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                self.key_file,
                f"may be read by others (mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 it",
            )
        key = self.key_file.read_bytes().strip()
        try:
            Fernet(key)
        except ValueError:
            raise SecretError(self.key_file, "is not a ReplicaDesk secrets key") from None
        return key

    def encrypt(self, secret: Secret) -> bytes:
        return self._load(create=True).encrypt(secret.reveal().encode("utf-8"))

    def decrypt(self, token: bytes, what: str) -> Secret:
        try:
            plain = self._load(create=False).decrypt(token)
        except InvalidToken:
            raise SecretError(
                self.key_file,
                f"cannot decrypt the password of {what}: it was stored with another key",
            ) from None
        return Secret(plain.decode("utf-8"))
