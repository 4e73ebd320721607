"""No network: the probe answers within seconds, and offline the Hugging Face hub fails at once, not after retries."""

from __future__ import annotations

import os
import socket
import time

import pytest
from huggingface_hub import constants

from benchmark.common import network


@pytest.fixture
def offline_state(monkeypatch):
    """Whatever the probe switches is put back after the test."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    for name in ("HF_HUB_OFFLINE", *network.IR_DATASETS_OFFLINE):
        monkeypatch.delenv(name, raising=False)
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_probe_tells_a_listening_host_from_a_closed_port(offline_state):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert network.reachable(f"http://127.0.0.1:{server.getsockname()[1]}")
    started = time.monotonic()
    assert not network.reachable(f"http://127.0.0.1:{closed_port()}")
    assert time.monotonic() - started < network.PROBE_TIMEOUT_S


def test_probe_goes_through_the_proxy_a_download_would_use(offline_state):
    """With a proxy set, reaching the proxy is what counts (the host itself may not resolve from here)."""
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        offline_state.setenv("https_proxy", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        assert network.reachable("https://huggingface.example")
    offline_state.setenv("https_proxy", f"http://127.0.0.1:{closed_port()}")
    assert not network.reachable("https://huggingface.example")


def test_unreachable_hub_switches_downloads_to_fail_at_once(offline_state):
    """Offline, a model that is not cached fails within seconds (the hub would otherwise retry for a minute)."""
    from transformers import AutoTokenizer

    offline_state.setattr(network, "reachable", lambda url, timeout_s=3.0: False)
    offline_state.setattr(constants, "HF_HUB_OFFLINE", False)
    note = network.fail_fast_offline()
    assert "unreachable" in note and constants.HF_HUB_OFFLINE
    assert os.environ["IR_DATASETS_DL_TRIES"] == "1"
    started = time.monotonic()
    with pytest.raises(OSError):
        AutoTokenizer.from_pretrained("some-org/surely-not-cached-anywhere")
    assert time.monotonic() - started < 5


def test_reachable_hub_changes_nothing(offline_state):
    offline_state.setattr(network, "reachable", lambda url, timeout_s=3.0: True)
    offline_state.setattr(constants, "HF_HUB_OFFLINE", False)
    assert network.fail_fast_offline() == "online"
    assert not constants.HF_HUB_OFFLINE
