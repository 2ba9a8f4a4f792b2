"""Celery tasks, one module per pipeline stage; names are ``ringrift.<stage>.<verb>``."""
