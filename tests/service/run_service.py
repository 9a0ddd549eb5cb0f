"""The service recipe under uvicorn, for the shutdown test: logs to ``SERVICE_LOG``, stops on SIGTERM.

Run as ``python tests/service/run_service.py`` with the recipe's environment
and ``SERVICE_PORT`` (on 127.0.0.1), ``SERVICE_LOG`` and ``GRACEFUL_SHUTDOWN``
(uvicorn's ``--timeout-graceful-shutdown``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "how-to"))


def main() -> None:
    logging.basicConfig(
        filename=os.environ["SERVICE_LOG"], level=logging.INFO, format="%(name)s %(levelname)s %(message)s"
    )
    from service_app import app  # noqa: PLC0415 - found through the path set above

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["SERVICE_PORT"]),
        log_config=None,  # the logging set up above, uvicorn's lines included
        timeout_graceful_shutdown=float(os.environ["GRACEFUL_SHUTDOWN"]),
    )


if __name__ == "__main__":
    main()
