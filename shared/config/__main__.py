"""``python -m shared.config``: see cli.py."""
import sys

from shared.config.cli import main

sys.exit(main())
