"""The emulator controls: what a test suite needs from ecsd beyond the cloud's API.

Served under ``/_ecsd/`` (http/emulator.py) with the simulated driver only, and for the operator
token only; the pytest plugin (testing/plugin.py) drives them over HTTP. Nothing in the product API
depends on this package; the engine offers one hook (``Engine.step_hook``) that the controls set
while a fault or a hold is registered.

    controls.py   faults, holds and the step delay (the engine hook), the operator token
    requests.py   the request log (an ASGI middleware and its bounded record)
    state.py      reset, named snapshots and restore (every table's rows)
    seedfile.py   the seed format (JSON or YAML) and how it is applied
"""
