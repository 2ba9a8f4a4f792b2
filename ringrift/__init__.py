"""ringrift: train RingRift players the AlphaZero way, as Celery tasks on Redis."""

__version__ = "0.1.0"
