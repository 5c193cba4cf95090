"""Fixtures for inventory tests: a folder with a key file, a known_hosts file and a host key."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_CONTENTS_MARKER = "PRIVATE-KEY-BODY-THAT-MUST-NEVER-BE-SHOWN"


@pytest.fixture
def host_key() -> str:
    """A real ed25519 public host key line, "ssh-ed25519 AAAA…"."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture
def folder(tmp_path: Path, host_key: str) -> Path:
    """The inventory's folder, holding keys/id_ed25519 and known_hosts next to where it is written."""
    (tmp_path / "keys").mkdir()
    key = tmp_path / "keys" / "id_ed25519"
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_CONTENTS_MARKER}\n")
    key.chmod(0o600)
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:2222 {host_key}\n")
    return tmp_path


@pytest.fixture
def write(folder: Path) -> Callable[[str], Path]:
    """Write YAML text (dedented) as folder/inventory.yaml and return its path."""

    def write_inventory(text: str) -> Path:
        path = folder / "inventory.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write_inventory
