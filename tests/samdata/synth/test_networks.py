"""samdata.synth.networks: every registered generator makes an image and masks; seeded, validated."""

from __future__ import annotations

import pytest
import torch

from samdata.errors import ConfigError, RegistryError
from samdata.synth.networks import GENERATORS, NetConfig, build_networks


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_every_registered_generator_makes_image_and_masks(arch: str) -> None:
    config = NetConfig(arch=arch, size=32, width=4, latent=8, labels=2)
    g, d = build_networks(config, seed=0)
    out = g(torch.randn(3, 8))
    assert out.shape == (3, 3, 32, 32)
    assert out[:, 0].abs().max() <= 1.0
    assert d(out).shape == (3,)


def test_networks_seeded_and_validated() -> None:
    config = NetConfig(size=32, width=4, latent=8)
    a, b, c = build_networks(config, 1)[0], build_networks(config, 1)[0], build_networks(config, 2)[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    with pytest.raises(RegistryError, match="dcgan, fastgan"):
        NetConfig(arch="stylegan")
    with pytest.raises(ConfigError, match="size=48"):
        NetConfig(size=48)
