"""``python -m dashboard RUN_DIR [--host 127.0.0.1] [--port 8050]``."""

from dashboard.app import main

if __name__ == "__main__":
    raise SystemExit(main())
