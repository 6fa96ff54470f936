"""``python -m asgi_mtls.cli``: the same as the ``asgi-mtls`` command."""

from __future__ import annotations

import sys

from asgi_mtls.cli import main

sys.exit(main())
