"""The training library: one dataset in, one model out (``loop.train``), with its config,
data order, losses, optimiser and schedule, EMA, early stopping, checkpoints that survive a
crash, and data-parallel training under torchrun. It knows nothing of Celery or the ledger: the
service drives it through callbacks (``ringrift.pipeline.run_hooks``), and it can be used and
tested on its own.
"""
