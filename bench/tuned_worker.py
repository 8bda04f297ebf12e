"""The Stockroute worker with Faust settings overridden from BENCH_FAUST_OVERRIDES (JSON).

Benchmarks use it to measure a settings change before it is proposed for streams/app.py,
without touching the app: `python -m bench.tuned_worker worker --data-dir D --web-port P`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import streams.app as app_module

_create_runtime = app_module.create_runtime


def create_runtime(settings: Any, **kw: Any) -> Any:
    rt = _create_runtime(settings, **kw)
    for key, value in json.loads(os.environ.get("BENCH_FAUST_OVERRIDES", "{}")).items():
        setattr(rt.app.conf, key, value)
    return rt


app_module.create_runtime = create_runtime

if __name__ == "__main__":
    from streams.cli import main

    sys.exit(main())
