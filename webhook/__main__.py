"""``python -m webhook``: the same entry point as the ``admission-webhook`` console script."""

from webhook import cli

raise SystemExit(cli.main())
