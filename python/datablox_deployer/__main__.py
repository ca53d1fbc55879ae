"""`python3 -m datablox_deployer`: the same as `datablox/bin/deploy`."""

import gc
import sys

from .cli import main

code = main()
# The process ends here: frozen, the objects left are skipped by the interpreter's last full
# collection, which would walk them all only for the process to exit.
gc.freeze()
sys.exit(code)
