"""The policy/value network: a residual tower over the encoded planes, named by shape.

Architectures are named ``b{blocks}c{channels}`` (``b4c64``: 4 residual blocks of 64 channels).
``PolicyValueNet(board, arch)`` takes ``encoding.encode_state`` output in batches
(``planes (B, C, S, S)``, ``globals (B, G)``) and returns ``(logits (B, A), values (B, 4))``:

- **stem**: 3x3 conv ``C -> channels``, batch norm, plus a linear map of the globals added as a
  per-channel bias, ReLU;
- **tower**: ``blocks`` residual blocks (conv-BN-ReLU-conv-BN, skip, ReLU). After the stem and
  every block the activations are multiplied by the board's validity plane, so the off-board
  squares of a hex board's grid stay zero and padding behaves like the board edge;
- **policy**: 1x1 conv-BN-ReLU, then a 1x1 conv to ``action_space(board).num_planes`` planes,
  flattened plane-major (``plane * S * S + grid_index``, the action index layout), followed by
  a linear head over pooled features for the 9 singleton actions. ``A = action_space(board).size``;
- **value**: pooled features (masked mean and max over the board) -> MLP -> 4 values in
  ``[-1, 1]`` (tanh), one per seat slot in the player to move's rotated order
  (``encoding.seat_players``). Slots of absent seats carry no meaning; training ignores them.

Logits are raw; ``masked_log_softmax(logits, mask)`` turns them into log-probabilities over the
legal actions. Illegal entries come out as ``-inf``: a cross-entropy against a target that is
zero there must skip them (``torch.where(target > 0, target * logp, 0)``), since ``0 * -inf`` is
NaN.

Saved models carry their metadata (architecture, encoder version, rules version, board, action
size, input planes, globals); ``load_model`` refuses a file whose metadata differs from what the
caller expects with ``ModelMismatchError``, never loading weights into the wrong shape or
meaning, and a model trained under other rules (``ringrift.game.rules_version``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ringrift.ai.encoding import ENCODER_VERSION, NUM_GLOBALS, NUM_PLANES, PLANE_VALID
from ringrift.atomic import atomic_file
from ringrift.game.actions import NUM_SINGLETONS, action_space
from ringrift.game.boards import BoardType
from ringrift.game.rules_version import RULES_VERSION, UNVERSIONED

TINY = "b4c64"
DEFAULT = "b10c128"
VALUE_OUTPUTS = 4  # one per seat slot

# The metadata keys that must match for a file to load, in the order they are checked.
CONTRACT_KEYS = (
    "architecture",
    "encoder_version",
    "board",
    "action_size",
    "input_planes",
    "globals",
)


class ModelMismatchError(ValueError):
    """A saved model whose metadata differs from what the caller expects."""


@dataclass(frozen=True)
class ArchSpec:
    blocks: int
    channels: int

    @property
    def name(self) -> str:
        return f"b{self.blocks}c{self.channels}"

    def __str__(self) -> str:
        return self.name


def parse_arch(arch: str | ArchSpec) -> ArchSpec:
    """``"b4c64"`` -> ``ArchSpec(blocks=4, channels=64)``; an ``ArchSpec`` passes through."""
    if isinstance(arch, ArchSpec):
        return arch
    m = re.fullmatch(r"b(\d+)c(\d+)", arch.strip())
    if not m:
        raise ValueError(
            f"unknown architecture {arch!r}: expected b<blocks>c<channels>, e.g. b4c64"
        )
    blocks, channels = int(m.group(1)), int(m.group(2))
    if not 1 <= blocks <= 64 or not 8 <= channels <= 1024:
        raise ValueError(
            f"architecture {arch!r} out of range: 1-64 blocks and 8-1024 channels supported"
        )
    return ArchSpec(blocks, channels)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(x + y) * mask


class PolicyValueNet(nn.Module):
    """Residual policy/value network for one board; see the module docstring."""

    def __init__(
        self,
        board: BoardType | str,
        arch: str | ArchSpec = TINY,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.board = BoardType(board)
        self.arch = parse_arch(arch)
        space = action_space(self.board)
        self.size = space.geo.size
        self.policy_planes = space.num_planes
        self.action_size = space.size
        ch = self.arch.channels
        head = min(ch, 64)

        self.stem = nn.Conv2d(NUM_PLANES, ch, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(ch)
        self.globals_in = nn.Linear(NUM_GLOBALS, ch)
        self.blocks = nn.ModuleList(ResidualBlock(ch) for _ in range(self.arch.blocks))

        self.policy_conv = nn.Conv2d(ch, head, 1, bias=False)
        self.policy_bn = nn.BatchNorm2d(head)
        self.policy_out = nn.Conv2d(head, self.policy_planes, 1)
        self.singletons = nn.Linear(2 * ch, NUM_SINGLETONS)

        self.value_fc = nn.Linear(2 * ch, ch)
        self.value_out = nn.Linear(ch, VALUE_OUTPUTS)
        if device is not None:
            self.to(device)

    def forward(
        self, planes: torch.Tensor, globals_: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``planes (B, C, S, S)``, ``globals (B, G)`` -> ``(logits (B, A), values (B, 4))``."""
        mask = planes[:, PLANE_VALID : PLANE_VALID + 1]
        x = self.stem_bn(self.stem(planes)) + self.globals_in(globals_)[:, :, None, None]
        x = F.relu(x) * mask
        for block in self.blocks:
            x = block(x, mask)

        # Masked mean over board cells; activations are >= 0 and 0 off the board, so the plain
        # max is the max over board cells.
        cells = mask.sum(dim=(2, 3)).clamp_min(1.0)
        pooled = torch.cat([x.sum(dim=(2, 3)) / cells, x.amax(dim=(2, 3))], dim=1)

        p = F.relu(self.policy_bn(self.policy_conv(x)))
        p = self.policy_out(p).flatten(1)
        logits = torch.cat([p, self.singletons(pooled)], dim=1)

        v = F.relu(self.value_fc(pooled))
        values = torch.tanh(self.value_out(v))
        return logits, values

    def metadata(self) -> dict[str, Any]:
        """What a saved file must record for ``load_model`` to accept it."""
        return {
            "architecture": self.arch.name,
            "encoder_version": ENCODER_VERSION,
            "rules_version": RULES_VERSION,
            "board": self.board.value,
            "action_size": self.action_size,
            "input_planes": NUM_PLANES,
            "globals": NUM_GLOBALS,
        }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the legal entries (``mask`` True); illegal entries are ``-inf``.

    Numerically safe: illegal logits are replaced by the dtype's lowest finite value before the
    softmax (so a row with one legal action gives 0 there, and no row produces NaN), and set to
    ``-inf`` after it. A row with no legal action comes out all ``-inf``. Gradients flow only
    into legal logits.
    """
    mask = mask.to(torch.bool)
    lowest = torch.finfo(logits.dtype).min
    safe = torch.where(mask, logits, torch.full_like(logits, lowest))
    out = F.log_softmax(safe, dim=-1)
    return torch.where(mask, out, torch.full_like(out, float("-inf")))


def save_model(
    path: str | os.PathLike[str], model: PolicyValueNet, meta: dict[str, Any] | None = None
) -> None:
    """Write ``{"state_dict", "meta"}`` atomically (temporary file, then ``os.replace``).

    The same weights and metadata always give the same bytes (so a model file lost from the
    store can be written again from its final checkpoint and checked against its sha256).

    ``meta`` may add keys (config name, generation, ...: plain str/int/float/bool/None values,
    lists and dicts of them, so that ``weights_only`` loading reads them); the contract keys
    are taken from the model, and a ``meta`` that states one differently is refused.
    """
    path = Path(path)
    contract = model.metadata()
    extra = dict(meta or {})
    for key in CONTRACT_KEYS:
        if key in extra and extra[key] != contract[key]:
            raise ValueError(
                f"save_model {path}: meta says {key}={extra[key]!r} but the model has "
                f"{contract[key]!r}"
            )
    try:  # fresh objects in a fixed shape: pickle's output depends on which are shared
        canonical = json.loads(json.dumps({**extra, **contract}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"save_model {path}: meta must be plain JSON values ({e})") from None
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": canonical,
    }
    with atomic_file(path) as f:
        torch.save(payload, f)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ModelMismatchError(f"{path}: not a readable model file ({e})") from e
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("meta"), dict)
        or not isinstance(data.get("state_dict"), dict)
    ):
        raise ModelMismatchError(f"{path}: not a ringrift model file (no state_dict and meta)")
    return data["state_dict"], data["meta"]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored in a model file."""
    return _read(Path(path))[1]


def load_model(
    path: str | os.PathLike[str],
    board: BoardType | str,
    arch: str | ArchSpec,
    encoder_version: int = ENCODER_VERSION,
    device: torch.device | str | None = None,
) -> PolicyValueNet:
    """Load a model saved by ``save_model``, in eval mode, on ``device`` (CPU by default).

    Raises ``ModelMismatchError`` naming the file, the stored value and the expected one when the
    stored architecture, encoder version, board, action size, input planes or globals differ
    from what the caller expects (or from what this code's encoder produces).
    """
    path = Path(path)
    board = BoardType(board)
    spec = parse_arch(arch)
    state_dict, meta = _read(path)
    rules = meta.get("rules_version", UNVERSIONED)
    if rules != RULES_VERSION:
        raise ModelMismatchError(
            f"{path}: trained on games of rules version {rules!r}; this engine plays rules "
            f"version {RULES_VERSION}, so the model can be neither an opponent nor a starting "
            "point: train a new one"
        )
    expected = {
        "architecture": spec.name,
        "encoder_version": encoder_version,
        "board": board.value,
        "action_size": action_space(board).size,
        "input_planes": NUM_PLANES,
        "globals": NUM_GLOBALS,
    }
    for key in CONTRACT_KEYS:
        if meta.get(key) != expected[key]:
            raise ModelMismatchError(
                f"{path}: stored {key} is {meta.get(key)!r}, expected {expected[key]!r}"
            )
    if encoder_version != ENCODER_VERSION:
        raise ModelMismatchError(
            f"{path}: stored encoder_version is {encoder_version!r}, but this code encodes "
            f"version {ENCODER_VERSION!r}"
        )
    model = PolicyValueNet(board, spec)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise ModelMismatchError(
            f"{path}: weights do not fit {spec.name} on {board.value}: {e}"
        ) from e
    if device is not None:
        model.to(device)
    model.eval()
    return model
