"""Benchmarks of asgi-mtls (issue #10): what the middleware costs a real app.

Regenerate ``docs/benchmarks.md`` (five to ten minutes on two cores)::

    python -m benchmarks

Check that every code path still runs (a few seconds, writes nothing; CI)::

    python -m benchmarks --smoke

Every figure is a ratio of variants measured side by side in one run, interleaved round by
round, so that the drift of a shared machine hits every variant alike.  ``--help`` lists the
knobs (rounds, requests per round, which parts to run).

Modules: :mod:`~benchmarks.pki` (certificates, made outside every timed region),
:mod:`~benchmarks.apps` (the Starlette and FastAPI apps and their variants),
:mod:`~benchmarks.driver` (calling ASGI apps in process, interleaved rounds, ratio statistics),
:mod:`~benchmarks.inprocess` (the hit-path rows), :mod:`~benchmarks.miss` (never-seen
certificates against cryptography's floor), :mod:`~benchmarks.e2e` and
:mod:`~benchmarks.serve` (real uvicorn and nginx driven by ``ab``), :mod:`~benchmarks.memory`
(RSS under distinct certificates and junk floods), :mod:`~benchmarks.hotpath` (where the time
of a cached request goes) and :mod:`~benchmarks.report` (the table and the docs page).
"""
