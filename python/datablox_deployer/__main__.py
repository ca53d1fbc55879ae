"""`python3 -m datablox_deployer`: the same as `datablox/bin/deploy`."""

import sys

from .cli import main

sys.exit(main())
