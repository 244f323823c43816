"""Start Flower behind basic auth (``python -m workers.flower``); refuse to start without it."""
from __future__ import annotations

import os
import sys

from config.settings import settings_or_exit


def main() -> int:
    """Exec ``celery flower`` once authentication is configured."""
    auth = os.environ.get("FLOWER_BASIC_AUTH", "")
    if ":" not in auth or not auth.split(":", 1)[1]:
        print("FLOWER_BASIC_AUTH: required as user:password; Flower never runs unauthenticated",
              file=sys.stderr)
        return 2
    if os.environ.get("FLOWER_UNAUTHENTICATED_API", "").lower() in ("1", "true", "yes"):
        print("FLOWER_UNAUTHENTICATED_API: must not be set", file=sys.stderr)
        return 2
    settings = settings_or_exit(os.environ)
    # Flower reads FLOWER_BASIC_AUTH from the environment, keeping it off the command line.
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", "workers.app", "flower",
                               f"--port={settings.flower_port}", f"--address={settings.flower_address}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
