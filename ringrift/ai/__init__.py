"""Players: uniform random and a heuristic player (no network), later MCTS and the network."""

from ringrift.ai.heuristic import HeuristicPlayer
from ringrift.ai.random_player import RandomPlayer

__all__ = ["HeuristicPlayer", "RandomPlayer"]
