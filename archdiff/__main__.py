"""``python -m archdiff``."""
import sys

from archdiff.cli.main import main

sys.exit(main())
