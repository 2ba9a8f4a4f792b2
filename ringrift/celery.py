"""The Celery application. ``celery -A ringrift worker -Q gpu0`` finds ``app`` here.

Settings come from the top-level ``celeryconfig`` module (every one overridable by environment);
worker start-up hooks (device binding per queue) come from ``workers.bootstrap``.
"""

from __future__ import annotations

from celery import Celery

import workers.bootstrap  # noqa: F401 - connects the worker start-up signal handlers

TASK_MODULES = [
    "ringrift.tasks.health",
    "ringrift.tasks.selfplay",
    "ringrift.tasks.sync",
    "ringrift.tasks.export",
    "ringrift.tasks.train",
    "ringrift.tasks.evaluate",
    "ringrift.tasks.promote",
    "ringrift.tasks.pipeline",
]

app = Celery("ringrift", include=TASK_MODULES)
app.config_from_object("celeryconfig")
