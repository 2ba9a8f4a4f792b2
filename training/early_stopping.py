"""Early stopping on the validation loss: stop once it has not improved for a while."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EarlyStopping:
    """Validation-loss bookkeeping: the best loss so far and the checks since it was reached.

    ``update(loss)`` records one check and says whether to stop: ``patience`` checks in a row
    without a new best (strictly lower; a NaN is never a best). ``patience`` 0 never stops.
    """

    patience: int
    best: float | None = None
    bad_checks: int = 0

    def update(self, loss: float) -> bool:
        if self.best is None or loss < self.best:
            self.best, self.bad_checks = loss, 0
        else:
            self.bad_checks += 1
        return 0 < self.patience <= self.bad_checks
