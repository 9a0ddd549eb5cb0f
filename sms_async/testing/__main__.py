"""``python -m sms_async.testing``: serve the simulated gateway on loopback."""

from sms_async.testing._cli import main

raise SystemExit(main())
