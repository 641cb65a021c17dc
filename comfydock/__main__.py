"""Allows `python -m comfydock`."""

import sys

from comfydock.cli import main

sys.exit(main())
