"""The network as a search evaluator: batched priors over legal moves and values per seat.

``NetEvaluator(model)`` implements ``mcts.Evaluator``. One call encodes the whole batch of
positions into one tensor, runs the network once under ``torch.inference_mode()``, and turns
its outputs into what the search wants:

- **priors** in ``legal_moves(state)`` order: a softmax over the legal action indices only
  (``network.masked_log_softmax``). Moves that share one action index (a recovery slide's
  extraction choices) split that index's probability equally, so the priors sum to 1.
- **values** in seat order 1..n (length ``num_players``): the network answers per seat slot in
  the player to move's rotated order (``encoding.seat_players``), which this rotates back.

On CUDA the forward pass runs under bf16 autocast; on the CPU in float32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ringrift.ai.encoding import encode_batch, seat_players
from ringrift.ai.network import ArchSpec, PolicyValueNet, load_model, masked_log_softmax
from ringrift.game.actions import action_space
from ringrift.game.boards import BoardType
from ringrift.game.movegen import legal_moves
from ringrift.game.state import GameState


@dataclass(frozen=True)
class Prepared:
    """A batch encoded for the network, with what ``finish`` needs to read its answer."""

    states: list[GameState]
    planes: np.ndarray
    glob: np.ndarray
    mask: np.ndarray  # legal actions, (batch, action space)
    rows: np.ndarray  # batch row of each legal move
    cols: np.ndarray  # action index of each legal move
    actions: list[np.ndarray]  # per state, the action index of each legal move in order


class NetEvaluator:
    """``mcts.Evaluator`` backed by a ``PolicyValueNet`` (put in eval mode on ``device``)."""

    def __init__(self, model: PolicyValueNet, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.board = model.board
        self.space = action_space(model.board)

    @staticmethod
    def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA (inference only: the outputs are read as float64), else none."""
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def evaluate(self, states: Sequence[GameState]) -> list[tuple[np.ndarray, np.ndarray]]:
        if not states:
            return []
        prepared = self.prepare(states)
        return self.finish(prepared, self.forward(prepared))

    # The three stages of ``evaluate``, for callers that overlap the network with other work
    # (``ringrift.ai.batched``): ``prepare`` and ``finish`` are Python and hold the GIL;
    # ``forward`` is torch work that releases it, so it can run in another thread.

    def prepare(self, states: Sequence[GameState]) -> Prepared:
        """Encode ``states`` and list their legal actions (nothing runs on the device)."""
        for s in states:
            if s.geo.board is not self.board:
                raise ValueError(
                    f"NetEvaluator for {self.board.value} asked to evaluate a "
                    f"{s.geo.board.value} position"
                )
        planes, glob = encode_batch(states)
        encode = self.space.encode
        # Per state: the action index of each legal move, in legal-move order.
        move_actions = [
            np.fromiter((encode(m) for m in legal_moves(s)), dtype=np.int64) for s in states
        ]
        if any(a.size == 0 for a in move_actions):
            raise ValueError("NetEvaluator cannot evaluate a position with no legal move")
        mask = np.zeros((len(states), self.space.size), dtype=np.bool_)
        for i, actions in enumerate(move_actions):
            mask[i, actions] = True
        rows = np.concatenate([np.full(a.size, i) for i, a in enumerate(move_actions)])
        cols = np.concatenate(move_actions)
        return Prepared(list(states), planes, glob, mask, rows, cols, move_actions)

    def forward(self, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
        """The network on prepared positions: (log-prior of each legal move, value per slot)."""
        dev = self.device
        with torch.inference_mode(), self.autocast(dev):
            logits, values = self.model(
                torch.from_numpy(prepared.planes).to(dev), torch.from_numpy(prepared.glob).to(dev)
            )
            logp = masked_log_softmax(logits.float(), torch.from_numpy(prepared.mask).to(dev))
            picked = logp[
                torch.from_numpy(prepared.rows).to(dev), torch.from_numpy(prepared.cols).to(dev)
            ]
            return picked.double().cpu().numpy(), values.double().cpu().numpy()

    def finish(
        self, prepared: Prepared, raw: tuple[np.ndarray, np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per position: priors in legal-move order and values in seat order."""
        move_logp, slot_values = raw
        out: list[tuple[np.ndarray, np.ndarray]] = []
        start = 0
        for i, (s, actions) in enumerate(zip(prepared.states, prepared.actions, strict=True)):
            k = actions.size
            p = np.exp(move_logp[start : start + k])
            start += k
            # Moves sharing an index split its probability: divide by how often it occurs.
            _, inverse, counts = np.unique(actions, return_inverse=True, return_counts=True)
            p = p / counts[inverse]
            p /= p.sum()  # exact in float64; the float32 softmax sums to 1 only approximately
            n = s.num_players
            value = np.zeros(n)
            for slot, player in enumerate(seat_players(n, s.current)):
                if player:
                    value[player - 1] = slot_values[i, slot]
            out.append((p, value))
        return out


def load_evaluator(
    path: str | os.PathLike[str],
    board: BoardType | str,
    arch: str | ArchSpec,
    device: str | torch.device = "cpu",
) -> NetEvaluator:
    """A ``NetEvaluator`` over the model saved at ``path`` (``load_model`` checks its contract)."""
    return NetEvaluator(load_model(path, board, arch, device=device), device)
