"""What the supervisor's replies look like to a person or a script: the ``sysg status``
table and the upstream's ``status.v1`` document, made from a ``StatusReply``.

Pure functions of protocol messages, shared by the CLI (which renders a reply it read)
and the supervisor (which renders ``status`` itself when the fast CLI path asks for a
``view``: ``cli/quick.py``), so both give the same bytes.
"""
