"""``python -m ringrift.cli``: the same as the ``ringrift`` command."""

from ringrift.cli.main import main

raise SystemExit(main())
