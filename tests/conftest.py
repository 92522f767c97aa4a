import numpy as np
import pytest

from simsnn.config.network import NetworkConfig


def make_cfg(family="dense", layers=None, **kw) -> NetworkConfig:
    data = dict(version=1, kind="network", name=kw.pop("name", f"tiny-{family}"), family=family,
                num_classes=kw.pop("num_classes", 3), input=kw.pop("input", {"shape": [6]}),
                layers=layers or [{"type": "dense", "units": 8}, {"type": "dense", "units": 8},
                                  {"type": "dense", "units": 3, "spiking": False}])
    data.update(kw)
    return NetworkConfig.model_validate(data)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
