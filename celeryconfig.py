"""Celery settings for the RingRift training service.

Loaded with ``app.config_from_object("celeryconfig")``. Every value can be
overridden from the environment so the same file serves dev, CI and compose.
"""

from __future__ import annotations

import os

# The service's own locations, beside Celery's settings so that all of them live in one file.
# ringrift/infra/settings.py reads the environment when a process starts its service (so `ringrift
# loop` and the tests can point a process elsewhere): RINGRIFT_DATA_DIR holds the artifact store,
# the workers' caches and, unless RINGRIFT_DATABASE_URL names another database (PostgreSQL for a
# cluster), the SQLite ledger file ledger.sqlite3.
ringrift_data_dir_default = "~/.ringrift"

# Redis db 0 carries the task queues.
broker_url = os.environ.get("RINGRIFT_BROKER_URL", "redis://127.0.0.1:6379/0")

# Redis db 1 keeps results apart from the queues so they can be flushed separately.
result_backend = os.environ.get("RINGRIFT_RESULT_BACKEND", "redis://127.0.0.1:6379/1")

# JSON only: no pickle, so a message can never execute code on a worker.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

# Ack after the task finishes, so a worker crash re-queues the job instead of losing it.
task_acks_late = True

# Take one job at a time: tasks are long and GPU-bound, prefetching would starve other workers.
worker_prefetch_multiplier = 1

# Report STARTED so the UI can tell queued jobs from running ones.
task_track_started = True

# Emit worker and task events for Flower and monitoring.
worker_send_task_events = True
task_send_sent_event = True

# Unacked tasks are redelivered after 2 h; must exceed the longest task or it runs twice.
# Each queue is one Redis list per priority step; a worker serves step 0 first (Redis runs
# priorities backwards), so the stages a generation waits on overtake waiting selfplay, which is
# sent at the last step (ringrift/infra/queues.py).
broker_transport_options = {"visibility_timeout": 7200, "priority_steps": [0, 3, 6, 9]}
result_backend_transport_options = {"visibility_timeout": 7200}

# Drop stored results after one day.
result_expires = 86400

# A task whose worker process dies (kill -9, OOM) goes back to the queue instead of being acked
# as failed: with late acks and idempotent tasks, the redelivery finishes the work.
task_reject_on_worker_lost = True

# Every worker also consumes a queue of its own ("<name>@<host>.dq2"): a promoted model is sent
# to each live worker through it, so every host warms its cache, whatever queues it shares.
worker_direct = True

# Work that needs no GPU goes to the "cpu" queue unless the caller routes it to a gpuN queue.
task_default_queue = "cpu"

# Keep retrying the broker at start-up (Celery 6 changes the default).
broker_connection_retry_on_startup = True

# A broker that is away for a while (a restart, a failover): sending a task keeps trying for
# about a minute, as the service's own Redis calls do (ringrift/infra/service.py), and a worker
# keeps reconnecting for good rather than exit after Celery's default 100 attempts.
task_publish_retry_policy = {
    "max_retries": 15,
    "interval_start": 0,
    "interval_step": 1,
    "interval_max": 5,
}
broker_connection_max_retries = None

# The reconciler: every tick reads the ledger for each enabled config and starts what is due.
# Beat runs once; overlapping ticks are harmless because every start is claimed in Redis first.
beat_schedule = {
    "pipeline-tick": {
        "task": "ringrift.pipeline.tick",
        "schedule": float(os.environ.get("RINGRIFT_TICK_SECONDS", "10")),
        "options": {"queue": "cpu", "expires": 60},
    },
}
