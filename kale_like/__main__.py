"""`python -m kale_like`: the command line."""

import sys

from kale_like.surfaces.cli import main

sys.exit(main())
