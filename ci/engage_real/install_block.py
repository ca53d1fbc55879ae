"""Deploys one block into a home the way the caretaker does on a node: with the caretaker's own
adapter (`datablox_engage_adapter.deploy.install_block`, as installed in HOME/python).

Fed on stdin to python3 (`python3 - HOME NAME VERSION`, from HOME) by deploy.py; prints the
adapter's status, or its error and exits 1.
"""
import sys
home, name, version = sys.argv[1:]
sys.path.insert(0, home + "/python")
from datablox_engage_adapter.deploy import DeployError, install_block
try:
    print(install_block(home, name, version)["status"])
except DeployError as error:
    print(error)
    sys.exit(1)
