"""``python -m sms_async`` and the ``sms-async`` command.

Exit codes: 0 every input accepted (duplicates and ``--skip-dnd`` skips do not
count against); 1 some inputs not accepted; 2 usage or configuration error;
3 aborted (bad credentials, no credit, a wrong endpoint, an unreadable input,
journal or results file not writable); 4 interrupted (run again with
``--resume``). See :mod:`sms_async.cli`.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the ``sms-async`` command line (needs the ``cli`` extra: click and rich)."""
    try:
        from sms_async.cli import main as cli_main  # noqa: PLC0415 - click and rich are an optional extra
    except ImportError as error:
        print(  # noqa: T201 - there is no other way to tell the user
            f"sms-async: the command line needs click and rich ({error.name} is missing): "
            "pip install 'sms_async[cli]'",
            file=sys.stderr,
        )
        sys.exit(2)
    cli_main()


if __name__ == "__main__":
    main()
