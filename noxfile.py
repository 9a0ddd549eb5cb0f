"""Sessions: tests, hostile, lint, typecheck, docs, bench.

The tests install the toy gateway's distribution (tests/toy_gateway_dist) beside
sms_async: its entry points are what the tests of a third gateway exercise.
"""

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
TOY = ("-e", "tests/toy_gateway_dist")
nox.options.default_venv_backend = "venv"
# Interpreters a machine does not have are skipped, not failures.
nox.options.error_on_missing_interpreters = False


@nox.session(python=["3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]", *TOY)
    session.run("pytest", *session.posargs)


@nox.session
def hostile(session: nox.Session) -> None:
    session.install("-e", ".[test]", *TOY)
    session.run("pytest", "-m", "hostile", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", *TOY, "mypy")
    session.run("mypy")
    session.run("mypy", "--strict", "tests/typing/api.py")
    session.run("mypy", "--strict", "tests/toy_gateway_dist/src")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the manual as CI does: a broken link or a missing API reference fails it."""
    session.install("-e", ".[docs]")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "-d",
        str(session.create_tmp() + "/site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)
