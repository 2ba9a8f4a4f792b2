"""The ``ringrift`` command (``main``) and what it shows and measures: status, benchmarks, the
one-machine loop and the demo."""
