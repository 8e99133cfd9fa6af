"""``sysg export systemd``: a validated manifest -> systemd unit files (docs/export.md).

Pure except ``writer.py``: ``project.export_project`` maps one ``model.Project`` to
``UnitFile`` values and the list of settings that have no systemd equivalent (``Dropped``);
``writer`` renders them as one stream or writes them atomically into a directory. The CLI
(``cli/commands/export.py``) wires them to the manifest loader. docs/export.md is the
mapping table, key by key.
"""
