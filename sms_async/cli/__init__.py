"""The ``sms-async`` command line: campaigns from files, progress, result files, exit codes.

A thin shell over the library: campaigns run through :mod:`sms_async.campaign`,
gateways come from the registry (:mod:`sms_async.providers`).

Commands::

    sms-async send RECIPIENTS --text ... --sender-id ... --output results.jsonl [--resume]
    sms-async status results.jsonl [--poll]
    sms-async balance
    sms-async dnd NUMBER... [--file PATH]
    sms-async simulate [--port 8080 ...]
    sms-async demo [--count 100000]

Exit codes:

=====  ===================================================================
0      every input accepted (duplicates and ``--skip-dnd`` skips do not
       count against); for look-ups, every answer as hoped
1      some inputs not accepted (invalid, rejected, unknown, unsent), or
       unknown rows remain (``status``)
2      usage or configuration error (click's own usage errors included);
       nothing was sent
3      aborted: bad credentials, no credit, a wrong endpoint, the input
       unreadable part-way, or the journal or results file could not be written
4      interrupted (Ctrl+C, SIGTERM): ``--resume`` continues
=====  ===================================================================

``send`` keeps a crash-safe journal next to the results file (see
:mod:`sms_async.campaign`): after a crash, ``kill -9`` or Ctrl+C, the same
command with ``--resume`` sends what was not sent, never a batch twice.
"""

from sms_async.cli._app import cli, main
from sms_async.cli._errors import CliError, ExitCode

__all__ = ["CliError", "ExitCode", "cli", "main"]
