"""The policy/value network: shapes, policy layout, masked softmax, save/load and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ringrift.ai.encoding import (
    ENCODER_VERSION,
    NUM_GLOBALS,
    NUM_PLANES,
    encode_batch,
    legal_mask,
)
from ringrift.ai.network import (
    DEFAULT,
    TINY,
    ArchSpec,
    ModelMismatchError,
    PolicyValueNet,
    count_parameters,
    load_model,
    masked_log_softmax,
    parse_arch,
    read_metadata,
    save_model,
)
from ringrift.game import RULES_VERSION, BoardType, GameConfig
from ringrift.game.actions import action_space
from tests.test_encoding import random_positions


def test_parse_arch() -> None:
    assert parse_arch("b4c64") == ArchSpec(blocks=4, channels=64)
    assert parse_arch(DEFAULT) == ArchSpec(10, 128)
    assert parse_arch(TINY).name == "b4c64" == str(parse_arch(TINY))
    assert parse_arch(ArchSpec(2, 32)) == ArchSpec(2, 32)
    for bad in ("b4", "c64b4", "b0c64", "b4c2", "resnet"):
        with pytest.raises(ValueError, match="architecture"):
            parse_arch(bad)


@pytest.mark.parametrize(
    "config", ["square8_2p", "hex8_3p", "square19_2p", "hexagonal_4p"], ids=lambda c: c
)
def test_forward_on_a_batch(config: str) -> None:
    torch.manual_seed(0)
    cfg = GameConfig.parse(config)
    model = PolicyValueNet(cfg.board, TINY).eval()
    states = [s for s in random_positions(config, seed=5, every=30, limit=120) if not s.is_over]
    states = states[:4]
    planes, glob = encode_batch(states)
    with torch.no_grad():
        logits, values = model(torch.from_numpy(planes), torch.from_numpy(glob))
    space = action_space(cfg.board)
    assert logits.shape == (len(states), space.size)
    assert values.shape == (len(states), 4)
    assert torch.isfinite(logits).all()
    assert (values.abs() <= 1).all()
    masks = torch.from_numpy(np.stack([legal_mask(s) for s in states]))
    probs = masked_log_softmax(logits, masks).exp()
    assert torch.allclose(probs.sum(dim=1), torch.ones(len(states)))
    assert (probs[~masks] == 0).all()


def test_policy_logits_are_plane_major_over_the_grid() -> None:
    model = PolicyValueNet(BoardType.HEX8, "b1c16").eval()
    space = action_space(BoardType.HEX8)
    with torch.no_grad():
        model.policy_out.weight.zero_()
        model.policy_out.bias.copy_(torch.arange(space.num_planes, dtype=torch.float32))
        logits, _ = model(torch.zeros(1, NUM_PLANES, 9, 9), torch.zeros(1, NUM_GLOBALS))
    planes_part = logits[0, : space.num_planes * space.grid]
    expected = torch.arange(space.num_planes * space.grid) // space.grid
    assert torch.equal(planes_part, expected.float())
    assert logits.shape[1] - planes_part.numel() == 9


def test_masked_log_softmax_is_safe() -> None:
    torch.manual_seed(1)
    logits = torch.randn(4, 50) * 30
    logits[0, 3] = 1e30  # an illegal logit far above the legal ones changes nothing
    mask = torch.rand(4, 50) < 0.3
    mask[0, 3] = False
    mask[1] = False
    mask[1, 7] = True  # one legal action: probability 1
    mask[2] = False  # no legal action: all -inf, no NaN
    logits.requires_grad_(True)
    logp = masked_log_softmax(logits, mask)
    assert not torch.isnan(logp).any()
    assert (logp[~mask] == float("-inf")).all()
    probs = logp.exp()
    assert (probs[~mask] == 0).all()
    for row in (0, 1, 3):
        assert probs[row].sum().item() == pytest.approx(1.0, abs=1e-6)
    assert logp[1, 7].item() == 0.0
    ref = torch.log_softmax(logits[3][mask[3]], dim=0)
    assert torch.allclose(logp[3][mask[3]], ref)
    # a loss over legal entries only has finite gradients, zero on illegal logits
    loss = -torch.where(mask, logp, torch.zeros_like(logp)).sum()
    loss.backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[~mask] == 0).all()


def _trained_a_little(board: BoardType, arch: str) -> PolicyValueNet:
    """A model whose batch-norm statistics have moved, so a round trip checks them too."""
    torch.manual_seed(2)
    model = PolicyValueNet(board, arch)
    size = model.size
    model.train()
    with torch.no_grad():
        model(torch.rand(3, NUM_PLANES, size, size), torch.rand(3, NUM_GLOBALS))
    return model.eval()


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _trained_a_little(BoardType.SQUARE8, TINY)
    path = tmp_path / "models" / "sq8.pt"
    save_model(path, model, {"config": "square8_2p", "generation": 3})
    assert [p.name for p in path.parent.iterdir()] == ["sq8.pt"]  # no temporary left behind
    meta = read_metadata(path)
    assert meta == {
        "config": "square8_2p",
        "generation": 3,
        "architecture": "b4c64",
        "encoder_version": ENCODER_VERSION,
        "rules_version": RULES_VERSION,
        "board": "square8",
        "action_size": 5705,
        "input_planes": NUM_PLANES,
        "globals": NUM_GLOBALS,
    }
    loaded = load_model(path, "square8", TINY, ENCODER_VERSION, device="cpu")
    assert not loaded.training
    x = torch.rand(5, NUM_PLANES, 8, 8)
    g = torch.rand(5, NUM_GLOBALS)
    with torch.no_grad():
        a, va = model(x, g)
        b, vb = loaded(x, g)
    assert torch.equal(a, b) and torch.equal(va, vb)
    # saving over an existing file replaces it
    save_model(path, loaded)
    assert read_metadata(path)["architecture"] == "b4c64"


def test_load_refuses_a_mismatch_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hex8.pt"
    save_model(path, PolicyValueNet(BoardType.HEX8, "b2c16"))
    load_model(path, BoardType.HEX8, "b2c16")  # the matching call works
    cases = [
        (("hex8", "b2c32", ENCODER_VERSION), "architecture", "'b2c16'", "'b2c32'"),
        (("hex8", "b2c16", ENCODER_VERSION + 1), "encoder_version", "1", "2"),
        (("square8", "b2c16", ENCODER_VERSION), "board", "'hex8'", "'square8'"),
    ]
    for (board, arch, version), key, stored, expected in cases:
        with pytest.raises(ModelMismatchError) as err:
            load_model(path, board, arch, version)
        text = str(err.value)
        assert str(path) in text and key in text and stored in text and expected in text
        assert isinstance(err.value, ValueError)

    # a file whose action size disagrees with the board's space (an older action layout)
    data = torch.load(path, weights_only=True)
    data["meta"]["action_size"] = 6000
    torch.save(data, path)
    with pytest.raises(ModelMismatchError, match="action_size is 6000, expected 6084"):
        load_model(path, "hex8", "b2c16")

    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(1)}, junk)
    with pytest.raises(ModelMismatchError, match="junk.pt"):
        load_model(junk, "hex8", "b2c16")


@pytest.mark.parametrize(("stored", "named"), [(None, 1), (RULES_VERSION - 1, RULES_VERSION - 1)])
def test_a_model_of_other_rules_is_refused(tmp_path: Path, stored: int | None, named: int) -> None:
    # Models saved before the rules version was recorded (None) were trained under version 1.
    path = tmp_path / "old.pt"
    save_model(path, PolicyValueNet(BoardType.HEX8, "b2c16"))
    payload = torch.load(path, weights_only=True)
    if stored is None:
        del payload["meta"]["rules_version"]
    else:
        payload["meta"]["rules_version"] = stored
    torch.save(payload, path)
    with pytest.raises(ModelMismatchError) as err:
        load_model(path, BoardType.HEX8, "b2c16")
    message = str(err.value)
    assert str(path) in message
    assert f"trained on games of rules version {named};" in message
    assert f"plays rules version {RULES_VERSION}" in message
    assert "neither an opponent nor a starting point" in message


def test_save_refuses_meta_that_contradicts_the_model(tmp_path: Path) -> None:
    model = PolicyValueNet(BoardType.SQUARE8, "b1c16")
    with pytest.raises(ValueError, match="architecture"):
        save_model(tmp_path / "m.pt", model, {"architecture": "b4c64"})
    assert not list(tmp_path.iterdir())


def test_parameter_counts_grow_with_the_shape() -> None:
    tiny = count_parameters(PolicyValueNet(BoardType.SQUARE8, TINY))
    default = count_parameters(PolicyValueNet(BoardType.SQUARE8, DEFAULT))
    assert 200_000 < tiny < 500_000
    assert 2_000_000 < default < 4_000_000
