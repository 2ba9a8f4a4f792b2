"""The version of the rules the engine plays, recorded on every game, shard, dataset and model.

Games played under other rules teach the wrong game, and a network trained on them expects
positions and outcomes this engine no longer produces; so export takes only games of the
current version and models of another version are refused as opponents and as starting
points. Bump it with every change that alters a legal-move list or an outcome.

1. The rules as first read from the spec.
2. The rules as the canonical engine's recorded games show them: line decisions (both options
   for every line, line processing goes on after a line's ring is paid), the markers that
   collapse with a territory region, regions offered once per set of cells, last-player-
   standing rounds counted from the candidate's turn, and a game ending as soon as one player
   alone has rings.
3. The canonical engine's no-dead-placement test (a new stack on an empty cell may count a
   capture of a cap one higher than its own), and territory decisions naming a region the
   finder does not offer.
"""

from __future__ import annotations

RULES_VERSION = 3

# Everything recorded before the version was: games, shards, datasets and models that do not
# name a version were made under the first rules.
UNVERSIONED = 1
