"""No network: find out once, within seconds, whether the network is there, and if it is not, make every
downloader fail at once.

Offline, the Hugging Face hub retries a missing model for about a minute (five retries with backoff) and
ir_datasets waits up to 15 s per try on a network that drops packets. With the hub switched to offline mode a model
in a local folder or the Hugging Face cache still loads and any other fails at once with the encoder's message
(pass a local folder or a cached id); ir_datasets gets one short try, then the data module's message (seed
IR_DATASETS_HOME). codecarbon runs as an OfflineEmissionsTracker and downloads nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request

PROBE_TIMEOUT_S = 3.0
IR_DATASETS_OFFLINE = {"IR_DATASETS_DL_TRIES": "1", "IR_DATASETS_DL_TIMEOUT": "5"}


def reachable(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """A TCP connection to the URL's host (or to the proxy that would carry it) opens within ``timeout_s``.

    The name lookup, which a socket timeout does not bound, runs in a thread that is abandoned when late.
    """
    target = urllib.parse.urlparse(url)
    proxy = urllib.request.getproxies().get(target.scheme)
    if proxy and not urllib.request.proxy_bypass(target.hostname or ""):
        target = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
    if not target.hostname:
        return False
    port = target.port or (443 if target.scheme == "https" else 80)
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((target.hostname, port), timeout=timeout_s).close()
            opened.append(True)
        except OSError:
            opened.append(False)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout_s)
    return bool(opened) and opened[0]


def fail_fast_offline() -> str:
    """Probe the Hugging Face hub; when it cannot be reached, put the hub into offline mode and give ir_datasets
    one short try per download. Returns what was found, for the manifest."""
    from huggingface_hub import constants

    if reachable(constants.ENDPOINT):
        return "online"
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub and transformers
    for name, value in IR_DATASETS_OFFLINE.items():
        os.environ.setdefault(name, value)
    return f"{constants.ENDPOINT} unreachable: models and datasets were read from local copies only"
