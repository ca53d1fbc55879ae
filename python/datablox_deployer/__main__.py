"""`python3 -m datablox_deployer`: the same as `datablox/bin/deploy`."""

from .cli import exit_now, main

exit_now(main())
