"""The composition root: a runtime with every agent registered.

The runtime (streams/app.py, streams/loop.py) knows no agent and the agents know no Kafka; this
is the one module that joins them, for `stockroute worker` and the tests.
"""

from __future__ import annotations

from agents import all_agents
from streams import promise_api
from streams.app import Runtime, create_runtime
from streams.loop import register
from streams.settings import WorkerSettings


def create_worker(settings: WorkerSettings) -> Runtime:
    rt = create_runtime(settings)
    for agent in all_agents():
        register(rt, agent)
    promise_api.install(rt)
    return rt
