"""A machine without network, for subprocesses: a ``sitecustomize`` that refuses every socket connection."""

from __future__ import annotations

from pathlib import Path

# Loaded by every Python started with this folder on PYTHONPATH: no socket can connect, as on a machine offline.
NO_NETWORK = """
import socket

def refuse(*args, **kwargs):
    raise OSError(101, "Network is unreachable (blocked by the test)")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
"""


def block_network(folder: Path) -> Path:
    """A folder to put on PYTHONPATH: Pythons started with it cannot open a connection."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(NO_NETWORK)
    return folder
