"""``python -m streamnorm.bench``."""

from .cli import main

raise SystemExit(main())
