"""systemg: a process supervisor for Linux driven by one YAML manifest.

Layers (dependencies point down only, enforced by import-linter):
``cli | daemon -> spawn | protocol -> manifest -> errors | paths``.
"""

__version__ = "0.1.0"
