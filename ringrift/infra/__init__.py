"""What every process stands on: settings from the environment, the service (ledger, store,
cache), the queues, the embedded Redis, start-up checks and stop signals."""
