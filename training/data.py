"""Training data: which rows train and which validate, the order batches are drawn in, and
batches gathered from the memory-mapped dataset into tensors.

- ``split_by_game`` holds whole games out for validation, so no position of a validation game,
  nor any symmetric copy of one, is trained on.
- ``BatchOrder`` gives batch ``k`` of a run as a pure function of ``(seed, k)``: after a resume
  the data position is just the step, and nothing about the stream needs a checkpoint. By
  default each epoch is a seeded permutation; with ``recency_weight > 0`` every batch is drawn
  (with replacement) with row weights that grow with the game's position in the dataset, which
  export writes oldest first, so recent games are seen more often.
- ``make_batch`` gathers rows (ascending, for sequential reads from the memory map) into a
  ``Batch`` on the training device; given one symmetry per row it builds the samples as seen
  under those board symmetries (on-the-fly augmentation of a dataset exported without
  ``augment``, which keeps the maps that needs). ``draw_symmetries`` gives batch ``k``'s
  symmetries as a pure function of ``(seed, k)``, drawn for the global batch before DDP shards
  it, so a resume and every rank see the same ones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ringrift.ai.dataset import Dataset, DatasetError, cell_action_tables
from ringrift.ai.symmetry import symmetries
from ringrift.game.boards import BoardType


class TrainingError(ValueError):
    """Training refused or stopped: too little data, an incompatible resume, a diverged loss."""


def split_by_game(
    game_index: np.ndarray, num_games: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, validation)``, holding out whole games.

    ``round(fraction * num_games)`` games are held out, at least one when ``fraction > 0`` and
    there are two games or more, and never all of them.
    """
    held = 0
    if fraction > 0 and num_games >= 2:
        held = min(max(1, round(fraction * num_games)), num_games - 1)
    rng = np.random.default_rng([seed, 0x5EED])
    is_val = np.zeros(num_games, dtype=bool)
    is_val[rng.permutation(num_games)[:held]] = True
    rows_val = is_val[np.asarray(game_index)]
    return np.flatnonzero(~rows_val), np.flatnonzero(rows_val)


class BatchOrder:
    """Batch ``k`` of a run, a pure function of ``(seed, k)``: no state in a checkpoint.

    Uniform (``weights`` None): epoch ``k // per_epoch`` is a seeded permutation of the rows;
    the tail of each epoch that does not fill a batch is skipped (a different tail next epoch).
    Weighted: batch ``k`` is ``batch_size`` rows drawn with replacement, with probability
    proportional to ``weights`` (one per row), from a generator seeded by ``(seed, k)``.
    """

    def __init__(
        self, rows: np.ndarray, batch_size: int, seed: int, weights: np.ndarray | None = None
    ) -> None:
        if len(rows) < batch_size:
            raise TrainingError(f"{len(rows)} rows cannot fill a batch of {batch_size}")
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = len(rows) // batch_size
        self._epoch = -1
        self._perm = rows
        self._cdf: np.ndarray | None = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != rows.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError("weights must be finite, non-negative, one per row, not all 0")
            self._cdf = np.cumsum(w / w.sum())

    def indices(self, step: int) -> np.ndarray:
        if self._cdf is not None:
            u = np.random.default_rng([self.seed, 0xB47C, step]).random(self.batch_size)
            picks = np.searchsorted(self._cdf, u * self._cdf[-1], side="right")
            return self.rows[np.minimum(picks, len(self.rows) - 1)]
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
            self._epoch = epoch
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size]


def recency_weights(
    game_index: np.ndarray, rows: np.ndarray, num_games: int, strength: float
) -> np.ndarray | None:
    """Row weights ``exp(strength * (g / (num_games - 1) - 1))`` for game position ``g``.

    The newest game weighs 1 and the oldest ``exp(-strength)``; ``strength`` 0 gives None
    (uniform epochs). Games are in dataset order, which export writes oldest first.
    """
    if strength == 0 or num_games < 2:
        return None
    g = np.asarray(game_index, dtype=np.float64)[rows]
    return np.exp(strength * (g / (num_games - 1) - 1.0))


def _csr_rows(offset: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR ``offset`` and selected ``rows``: (batch row of each entry, entry position)."""
    starts = np.asarray(offset[rows], dtype=np.int64)
    lens = np.asarray(offset[rows + 1], dtype=np.int64) - starts
    batch_row = np.repeat(np.arange(len(rows)), lens)
    first = np.cumsum(lens) - lens  # where each row's entries begin in the output
    pos = np.arange(int(lens.sum())) - np.repeat(first, lens) + np.repeat(starts, lens)
    return batch_row, pos


@dataclass(frozen=True)
class Batch:
    planes: torch.Tensor  # float32 (B, C, S, S)
    globals: torch.Tensor  # float32 (B, G)
    legal: torch.Tensor  # bool (B, A)
    policy_row: torch.Tensor  # int64 (P,): batch row of each policy entry
    policy_action: torch.Tensor  # int64 (P,)
    policy_prob: torch.Tensor  # float32 (P,)
    value: torch.Tensor  # float32 (B, 4)
    value_mask: torch.Tensor  # float32 (B, 4)


def make_batch(
    ds: Dataset, rows: np.ndarray, device: torch.device, syms: np.ndarray | None = None
) -> Batch:
    """Gather ``rows`` of ``ds`` into tensors on ``device``.

    With ``syms`` (one index into ``symmetries(ds.board)`` per row, 0 the identity) each sample
    is its row under that symmetry: the planes moved by the symmetry's ``grid_gather``, the
    legal and policy actions mapped (``map_actions``); globals and values do not change. Needs
    a dataset with symmetry maps (``require_symmetry_maps``) when a row has a line or territory
    action.
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")  # ascending reads from the memory map
    rows = rows[order]
    if syms is not None:
        syms = np.asarray(syms, dtype=np.int64)
        if syms.shape != (len(order),):
            raise ValueError(f"{syms.shape} symmetries for {len(order)} rows")
        syms = syms[order]
    b = len(rows)
    legal = np.zeros((b, ds.action_size), dtype=np.bool_)
    l_row, l_pos = _csr_rows(ds.legal_offset, rows)
    l_action = np.asarray(ds.legal_index[l_pos], dtype=np.int64)
    p_row, p_pos = _csr_rows(ds.policy_offset, rows)
    p_action = np.asarray(ds.policy_index[p_pos], dtype=np.int64)
    planes = np.asarray(ds.planes[rows])
    if syms is not None:
        l_action = map_actions(ds, rows, syms, l_row, l_action)
        p_action = map_actions(ds, rows, syms, p_row, p_action)
        gather = _grid_gathers(ds.board)[syms]  # (B, S*S): moved square -> source square
        flat = planes.reshape(b, planes.shape[1], -1)
        planes = np.take_along_axis(flat, gather[:, None, :], axis=2).reshape(planes.shape)
    legal[l_row, l_action] = True

    def put(a: np.ndarray, dtype: Any = None) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device, non_blocking=True)

    return Batch(
        planes=put(planes, np.float32),
        globals=put(ds.globals[rows], np.float32),
        legal=put(legal),
        policy_row=put(p_row, np.int64),
        policy_action=put(p_action, np.int64),
        policy_prob=put(ds.policy_prob[p_pos], np.float32),
        value=put(ds.value[rows], np.float32),
        value_mask=put(ds.value_mask[rows], np.float32),
    )


# ---------------------------------------------------------------------------------------------
# On-the-fly symmetry augmentation

SYMMETRY_STREAM = 0x5A11  # the symmetry draws' generator, apart from the batch order's


def draw_symmetries(seed: int, step: int, n: int, board: BoardType) -> np.ndarray:
    """Batch ``step``'s symmetry per row (``n`` of them, indices into ``symmetries(board)``).

    A pure function of ``(seed, step)``: a resumed run draws the same ones. Drawn for the whole
    global batch; under DDP each rank takes the same shard of these as of the rows.
    """
    k = len(symmetries(board))
    return np.random.default_rng([seed, SYMMETRY_STREAM, step]).integers(k, size=n)


def require_symmetry_maps(ds: Dataset) -> None:
    """Refuse (``TrainingError`` naming the file) a dataset that cannot be augmented on the fly:
    one augmented at export (augmenting again would only repeat its copies) or one without the
    symmetry maps (written before they existed)."""
    if ds.meta.get("augmented"):
        raise TrainingError(
            f"{ds.path}: already augmented at export ({ds.meta.get('symmetries')} symmetric "
            "copies of each position); on-the-fly augmentation would augment twice. Train it "
            "with augment off, or export without augmentation"
        )
    if not ds.has_symmetry_maps:
        raise TrainingError(
            f"{ds.path}: no symmetry maps (written before on-the-fly augmentation existed); "
            "re-export it without augmentation to train with augment on"
        )


@functools.cache
def _grid_gathers(board: BoardType) -> np.ndarray:
    out = np.stack([sym.grid_gather for sym in symmetries(board)])
    out.setflags(write=False)
    return out


def map_actions(
    ds: Dataset, rows: np.ndarray, syms: np.ndarray, entry_row: np.ndarray, actions: np.ndarray
) -> np.ndarray:
    """Action indices under the rows' symmetries: ``actions[i]`` of batch row ``entry_row[i]``
    (dataset row ``rows[entry_row[i]]``) as seen under symmetry ``syms[entry_row[i]]``.

    Cell-indexed actions map by table (``cell_action_tables``); line and territory actions
    through the row's stored maps. An action with neither raises ``DatasetError``: no
    probability mass is ever dropped or misplaced silently.
    """
    k = syms[entry_row]
    identity = k == 0
    mapped = np.where(identity, actions, cell_action_tables(ds.board)[k, actions])
    missing = np.flatnonzero(mapped < 0)
    if missing.size == 0:
        return mapped
    if ds.sym_offset is None or ds.sym_action is None or ds.sym_mapped is None:
        i = int(missing[0])
        raise DatasetError(
            f"{ds.path}: row {int(rows[entry_row[i]])} has line or territory action "
            f"{int(actions[i])} and the dataset no symmetry maps to move it"
        )
    size = ds.action_size
    e_row, e_pos = _csr_rows(ds.sym_offset, rows)
    keys = e_row * size + np.asarray(ds.sym_action[e_pos], dtype=np.int64)
    by_key = np.argsort(keys, kind="stable")
    keys = keys[by_key]
    want = entry_row[missing] * size + actions[missing]
    at = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    found = keys[at] == want if len(keys) else np.zeros(len(want), dtype=np.bool_)
    if not found.all():
        i = int(missing[np.flatnonzero(~found)[0]])
        raise DatasetError(
            f"{ds.path}: row {int(rows[entry_row[i]])}: no stored symmetry map for action "
            f"{int(actions[i])}"
        )
    mapped[missing] = ds.sym_mapped[e_pos[by_key[at]], k[missing]]
    return mapped
