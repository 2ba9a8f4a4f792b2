"""The network as a search evaluator: priors over legal moves, values in seat order, search."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ringrift.ai.encoding import encode_batch
from ringrift.ai.mcts import MCTS, SearchConfig
from ringrift.ai.net_evaluator import NetEvaluator, load_evaluator
from ringrift.ai.network import ModelMismatchError, PolicyValueNet, save_model
from ringrift.ai.selfplay import SelfplaySettings, play_game
from ringrift.game import GameConfig, GameState, legal_moves
from ringrift.game.actions import action_space
from tests.test_encoding import random_positions
from tests.test_symmetry import _recovery_position

ARCH = "b1c16"  # the evaluator's arithmetic does not depend on the tower's size


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(board: str, seed: int = 0) -> PolicyValueNet:
    torch.manual_seed(seed)
    return PolicyValueNet(board, ARCH).eval()


@pytest.mark.parametrize("config", ["square8_2p", "hex8_3p", "square8_4p"])
def test_priors_and_values_follow_the_legal_moves_and_seats(config: str) -> None:
    cfg = GameConfig.parse(config)
    net = _net(cfg.board.value)
    states = [s for s in random_positions(config, seed=3, every=11, limit=150) if not s.is_over]
    results = NetEvaluator(net).evaluate(states)
    assert len(results) == len(states)
    planes, glob = encode_batch(states)
    with torch.no_grad():
        _, slot_values = net(torch.from_numpy(planes), torch.from_numpy(glob))
    n = cfg.num_players
    for s, (priors, value), slots in zip(states, results, slot_values.numpy(), strict=True):
        assert priors.shape == (len(legal_moves(s)),)
        assert np.all(priors > 0) and abs(priors.sum() - 1.0) < 1e-9
        assert value.shape == (n,)
        for player in range(1, n + 1):  # slot 0 is the player to move, then turn order
            assert value[player - 1] == pytest.approx(slots[(player - s.current) % n], abs=1e-6)


def test_priors_are_the_masked_softmax_and_shared_indices_split() -> None:
    cfg = GameConfig.parse("square8_2p")
    net = _net("square8", seed=1)
    state = _recovery_position(cfg, 0)
    moves = legal_moves(state)
    space = action_space(cfg.board)
    actions = [space.encode(m) for m in moves]
    assert len(set(actions)) < len(actions), "the position should have a shared action index"
    ((priors, _),) = NetEvaluator(net).evaluate([state])
    planes, glob = encode_batch([state])
    with torch.no_grad():
        logits = net(torch.from_numpy(planes), torch.from_numpy(glob))[0][0].double().numpy()
    unique = sorted(set(actions))
    soft = np.exp(logits[unique] - logits[unique].max())
    soft /= soft.sum()
    expected = [soft[unique.index(a)] / actions.count(a) for a in actions]
    np.testing.assert_allclose(priors, expected, rtol=1e-5)
    assert abs(priors.sum() - 1.0) < 1e-9


def test_a_fresh_net_drives_a_search_and_a_game() -> None:
    cfg = GameConfig.parse("hex8_2p")
    evaluator = NetEvaluator(_net("hex8"))
    search = MCTS(evaluator, SearchConfig(simulations=24, batch_size=6), random.Random(0))
    root = search.search(GameState.initial(cfg))
    assert root.total_visits == 24 and len(root.children) > 1
    game = play_game(
        cfg, evaluator, SelfplaySettings(SearchConfig(simulations=6), max_moves=30), 1, "n1"
    )
    assert game.length == 30 and game.targets


def test_load_evaluator_checks_the_file(tmp_path: Path) -> None:
    net = _net("square8", seed=2)
    path = tmp_path / "m.pt"
    save_model(path, net)
    state = GameState.initial(GameConfig.parse("square8_2p"))
    loaded = load_evaluator(path, "square8", ARCH)
    ((a, va),) = NetEvaluator(net).evaluate([state])
    ((b, vb),) = loaded.evaluate([state])
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(va, vb)
    with pytest.raises(ModelMismatchError, match="architecture"):
        load_evaluator(path, "square8", "b2c16")
    with pytest.raises(ModelMismatchError, match="board"):
        load_evaluator(path, "hex8", ARCH)
    with pytest.raises(ValueError, match="hex8 position"):
        loaded.evaluate([GameState.initial(GameConfig.parse("hex8_2p"))])
    assert loaded.evaluate([]) == []


def test_the_traced_network_answers_as_the_eager_one_at_any_batch_size() -> None:
    """The CPU evaluator runs a TorchScript trace made from its first batch; later batches of
    other sizes and positions must get the eager model's answers."""
    states = [
        s for s in random_positions("square8_2p", seed=5, every=7, limit=120) if not s.is_over
    ]
    net = _net("square8")
    traced, eager = NetEvaluator(net), NetEvaluator(net, trace=False)
    for batch in (states[:3], states[3:4], states[4:]):
        for (p1, v1), (p2, v2) in zip(traced.evaluate(batch), eager.evaluate(batch), strict=True):
            np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-6)
    assert "scorer" in traced._traced and not eager._traced
