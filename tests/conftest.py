import pytest

from abcl.kernels import select

select("portable")  # as every workflow job runs: before torch computes anything in this process

import torch  # noqa: E402

from abcl.config import TrainConfig  # noqa: E402
from abcl.data import load_mnist5k  # noqa: E402
from abcl.train import load_model, train_model  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mnist5k():
    return load_mnist5k()


@pytest.fixture(scope="session")
def trained_cosface(mnist5k, tmp_path_factory):
    """A small CosFace model really trained on mnist5k (a few seconds on 2 cores)."""
    out = tmp_path_factory.mktemp("cosface")
    cfg = TrainConfig(loss="cosface", s=5.0, m=0.35, epochs=3)
    train_model(cfg, mnist5k, out, device="cpu", progress=False)
    return load_model(out / "model.pt")
