"""The network as a search evaluator: batched priors over legal moves and values per seat.

``NetEvaluator(model)`` implements ``mcts.Evaluator``. One call encodes the whole batch of
positions into one tensor, runs the network once under ``torch.inference_mode()``, and turns
its outputs into what the search wants:

- **priors** in ``legal_moves(state)`` order: a softmax over the legal action indices only
  (``LegalScorer``, the same as ``network.masked_log_softmax`` over the legal mask). Moves
  that share one action index (a recovery slide's extraction choices) split that index's
  probability equally, so the priors sum to 1.
- **values** in seat order 1..n (length ``num_players``): the network answers per seat slot in
  the player to move's rotated order (``encoding.seat_players``), which this rotates back.

On CUDA the forward pass runs under bf16 autocast; on the CPU in float32, through a TorchScript
trace of the network and the legal softmax together (``NetEvaluator._compiled``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ringrift.ai.encoding import encode_batch, seat_players
from ringrift.ai.network import ArchSpec, PolicyValueNet, load_model
from ringrift.game.actions import action_space
from ringrift.game.boards import BoardType
from ringrift.game.movegen import legal_moves
from ringrift.game.state import GameState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A batch encoded for the network, with what ``finish`` needs to read its answer."""

    states: list[GameState]
    planes: np.ndarray
    glob: np.ndarray
    rows: np.ndarray  # batch row of each distinct legal action
    cols: np.ndarray  # its action index
    spans: np.ndarray  # per state, where its distinct actions start in rows/cols (+ the end)
    inverse: list[np.ndarray]  # per state: each legal move's position among its actions
    counts: list[np.ndarray]  # per state: how many legal moves share each action


class LegalScorer(nn.Module):
    """The network plus the softmax over each position's legal actions, as one module.

    ``forward(planes, globals, rows, cols)`` -> ``(log-probability of each (row, col) legal
    action among its row's legal actions, values per seat slot)``. The softmax runs over the
    listed pairs only (a scatter per row), which gives ``masked_log_softmax`` over the legal
    mask without building a (batch x action space) mask; the pairs must be distinct.
    """

    def __init__(self, model: PolicyValueNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, planes: torch.Tensor, glob: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, values = self.model(planes, glob)
        picked = logits.float()[rows, cols]
        base = torch.zeros_like(values[:, 0], dtype=torch.float32)
        top = base.scatter_reduce(0, rows, picked, reduce="amax", include_self=False)
        shifted = picked - top[rows]
        total = base.scatter_add(0, rows, shifted.exp())
        return shifted - total.log()[rows], values.float()


class NetEvaluator:
    """``mcts.Evaluator`` backed by a ``PolicyValueNet`` (put in eval mode on ``device``)."""

    def __init__(
        self, model: PolicyValueNet, device: str | torch.device = "cpu", *, trace: bool = True
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.scorer = LegalScorer(self.model).eval()
        self.board = model.board
        self.space = action_space(model.board)
        self.trace = trace and self.device.type == "cpu"
        self._traced: dict[str, Any] = {}

    def _compiled(self, module: nn.Module, name: str, example: tuple[torch.Tensor, ...]) -> Any:
        """On the CPU, ``module`` traced and frozen by TorchScript (from ``example`` on first
        use); else ``module`` itself.

        A traced module runs its whole graph without returning to Python between operations,
        so it keeps its speed while another thread holds the interpreter (the search, when the
        network is overlapped with it); the eager model slows down about tenfold then. Should
        tracing fail (TorchScript is deprecated in recent PyTorch), the eager module is used.
        """
        if not self.trace:
            return module
        if name not in self._traced:
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")  # TorchScript's deprecation notices
                    traced = torch.jit.trace(module, example, check_trace=False)
                    self._traced[name] = torch.jit.freeze(traced.eval())
            except Exception as e:  # noqa: BLE001 - any failure: run the eager module
                log.warning("TorchScript tracing failed (%s); using the eager network", e)
                self._traced[name] = module
        return self._traced[name]

    def inference_module(self, planes: torch.Tensor, glob: torch.Tensor) -> Any:
        """The network alone, as ``forward`` runs it (for ``ringrift bench selfplay``)."""
        return self._compiled(self.model, "model", (planes, glob))

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
        """Encode ``states`` and list their distinct legal actions (nothing on the device)."""
        for s in states:
            if s.geo.board is not self.board:
                raise ValueError(
                    f"NetEvaluator for {self.board.value} asked to evaluate a "
                    f"{s.geo.board.value} position"
                )
        planes, glob = encode_batch(states)
        encode = self.space.encode
        # A search's leaves carry their legal moves (gumbel.Leaves): no need to list them again.
        known = getattr(states, "moves", None)
        listed = known if known is not None else [legal_moves(s) for s in states]
        uniques, inverses, counts = [], [], []
        for moves in listed:
            if not moves:
                raise ValueError("NetEvaluator cannot evaluate a position with no legal move")
            actions = np.fromiter((encode(m) for m in moves), dtype=np.int64, count=len(moves))
            u, inv, cnt = np.unique(actions, return_inverse=True, return_counts=True)
            uniques.append(u)
            inverses.append(inv)
            counts.append(cnt)
        sizes = np.fromiter((u.size for u in uniques), dtype=np.int64, count=len(uniques))
        spans = np.concatenate([[0], np.cumsum(sizes)])
        rows = np.repeat(np.arange(len(uniques)), sizes)
        return Prepared(
            list(states), planes, glob, rows, np.concatenate(uniques), spans, inverses, counts
        )

    def forward(self, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
        """The network on prepared positions: (log-prior of each distinct legal action, value
        per seat slot)."""
        dev = self.device
        inputs = (
            torch.from_numpy(prepared.planes).to(dev),
            torch.from_numpy(prepared.glob).to(dev),
            torch.from_numpy(prepared.rows).to(dev),
            torch.from_numpy(prepared.cols).to(dev),
        )
        scorer = self._compiled(self.scorer, "scorer", inputs)
        with torch.inference_mode(), self.autocast(dev):
            logp, values = scorer(*inputs)
            return logp.double().cpu().numpy(), values.double().cpu().numpy()

    def finish(
        self, prepared: Prepared, raw: tuple[np.ndarray, np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per position: priors in legal-move order and values in seat order."""
        action_logp, slot_values = raw
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for i, s in enumerate(prepared.states):
            a, b = prepared.spans[i], prepared.spans[i + 1]
            inverse, counts = prepared.inverse[i], prepared.counts[i]
            # Moves sharing an action split its probability equally.
            p = np.exp(action_logp[a:b])[inverse] / counts[inverse]
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
