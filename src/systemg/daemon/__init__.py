"""The resident supervisor: one process, one thread, one event loop."""
