"""argv in; text or JSON and an exit code out. Imports lazily (``sysg --version`` is cheap)."""
