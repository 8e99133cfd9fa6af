"""The exposure report (``sysg security``, docs/security.md §11).

``observe`` reads a running service's ``/proc/PID/*`` into ``facts.Facts`` (with ``mounts``
for ``mountinfo``); ``checks`` is systemd 252's assessor table with ``judges`` that score those
facts; ``exposure`` does systemd's arithmetic and labels; ``report`` builds the ``security.v1``
document. Only ``observe`` touches the system. Layer: above spawn/protocol, below the CLI.
"""
