"""The fork/exec boundary: the only package where ``os.fork`` and ``os.exec*`` appear."""
