"""The benchmark harness behind ``benchmarks/run.py``: client measurements and the report."""
