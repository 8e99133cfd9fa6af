"""The control-socket contract shared by the CLI and the supervisor (see ``messages``)."""
