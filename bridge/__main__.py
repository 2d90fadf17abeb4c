"""`python -m bridge` runs the CLI."""

import sys

from bridge.cli import main

sys.exit(main())
