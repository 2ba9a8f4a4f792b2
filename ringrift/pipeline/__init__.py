"""The loop's state machine and the rules it runs by: what is due for a configuration
(``state``), the presets that size it, the promotion gate, training runs and their fenced leases,
and the heartbeats that tell a dead worker from a busy one."""
