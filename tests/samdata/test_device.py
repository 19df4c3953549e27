"""The one device resolver: names to torch devices, with and without a (simulated) GPU."""

from __future__ import annotations

import pytest
import torch

from samdata.device import resolve_device
from samdata.errors import ConfigError


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torch report a CUDA device (only device names are built, nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torch report neither a CUDA nor an MPS device."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.usefixtures("gpu")
@pytest.mark.parametrize(
    ("name", "local_rank", "expected"),
    [
        ("auto", None, torch.device("cuda")),
        ("auto", 1, torch.device("cuda", 1)),
        ("cuda", None, torch.device("cuda")),
        ("cuda", 2, torch.device("cuda", 2)),
        ("cuda:3", 1, torch.device("cuda", 3)),  # an explicit index wins over the rank
        ("cpu", 1, torch.device("cpu")),
    ],
)
def test_names_on_a_gpu_machine(name: str, local_rank: int | None, expected: torch.device):
    assert resolve_device(name, local_rank) == expected


@pytest.mark.usefixtures("no_gpu")
def test_names_on_a_cpu_machine():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto", 1) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"device '{name}' asked for, but torch sees no CUDA device"):
            resolve_device(name)
    with pytest.raises(ConfigError, match="device 'mps' asked for, but torch sees no MPS device"):
        resolve_device("mps")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="'gpu' is not a torch device; expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu")
