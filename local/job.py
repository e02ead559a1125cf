"""`make job NAME=<job>`: runs one scheduled job once, now, against the running local stack."""

from __future__ import annotations

import json
import sys

from .environment import apply, local_environment


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: make job NAME=<job>", file=sys.stderr)
        return 2
    apply(local_environment())
    import app as kefu_app
    from chalicelib import resources

    from .pump import LocalLambdaContext, schedule_event

    name = argv[0]
    if name not in resources.SCHEDULES or not hasattr(kefu_app, name):
        print(f"unknown job {name!r}; jobs: {', '.join(sorted(resources.SCHEDULES))}", file=sys.stderr)
        return 2
    result = getattr(kefu_app, name)(schedule_event(name, "us-east-1"), LocalLambdaContext(name, "job"))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
