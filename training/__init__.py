"""The training library: network definitions, the self-play replay buffer, the training
loop and checkpoint handling, kept free of Celery so it can be used and tested on its own.
Filled in by the pipeline work.
"""
