"""``python -m pooldaemon``."""

from __future__ import annotations

import sys

from pooldaemon.cli import main

sys.exit(main())
