from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The parallel runner (pytest-xdist) gives its workers the terminal's COLUMNS and LINES; the
# commands the tests start must see what any process writing to a pipe sees.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis for the whole test session, so tests may flush it freely."""
    from ringrift.infra.localredis import LocalRedis

    server = LocalRedis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.start()
    finally:
        server.stop()


S3_BUCKET = "ringrift-artifacts"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (SeaweedFS) for the session, with ``S3_BUCKET`` created."""
    from tests.s3_harness import client, seaweed_s3

    with seaweed_s3(tmp_path_factory.mktemp("s3")) as url:
        client(url).create_bucket(Bucket=S3_BUCKET)
        yield url


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """These nets are tiny: one thread is as fast, and two OpenMP threads that spin-wait for
    each other slow down tenfold when the two CPU cores are shared with other processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four short uniform-search square8 games, exported with augmentation."""
    from ringrift.ai.dataset import write_dataset
    from ringrift.ai.mcts import SearchConfig, UniformEvaluator
    from ringrift.ai.selfplay import SelfplaySettings, play_game
    from ringrift.game import GameConfig

    cfg = GameConfig.parse("square8_2p")
    settings = SelfplaySettings(SearchConfig(simulations=4))
    games = [
        play_game(cfg, UniformEvaluator(), settings, seed, f"t{seed}").to_json()
        for seed in range(4)
    ]
    path = tmp_path_factory.mktemp("data") / "data.npz"
    write_dataset(games, path, "square8")
    return path
