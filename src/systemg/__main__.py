"""``python -m systemg`` is the same as the ``sysg`` command."""

from systemg.entry import main

raise SystemExit(main())
