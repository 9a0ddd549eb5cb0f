"""Sessions: tests, hostile, lint, typecheck, docs, bench.

The tests install the toy gateway's distribution (tests/toy_gateway_dist) beside
sms_async: its entry points are what the tests of a third gateway exercise.
"""

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
TOY = ("-e", "tests/toy_gateway_dist")
nox.options.default_venv_backend = "venv"
# On a developer's machine a Python it does not have is skipped; in CI (CI set,
# as CI services set it) it is an error: every claimed Python is tested there.
nox.options.error_on_missing_interpreters = "CI" in os.environ


# The Pythons pyproject.toml's classifiers claim, as in .ci/run.
PYTHONS = nox.project.python_versions(nox.project.load_toml("pyproject.toml"))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]", *TOY)
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)  # the README's command


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
