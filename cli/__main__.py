"""``python -m heart.cli``: the ``heart`` command, for a venv whose scripts are not on PATH."""

import sys

from heart.cli.main import main

sys.exit(main())
