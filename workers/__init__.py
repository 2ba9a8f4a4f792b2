"""How a worker process starts: GPU binding per queue (one Celery worker per GPU, each
consuming its own ``gpuN`` queue with concurrency 1), process-level setup such as seeding
and device selection, and the signal hooks that run before the first task. Filled in by
the pipeline work.
"""
