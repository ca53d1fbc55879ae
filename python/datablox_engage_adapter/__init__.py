"""Datablox Engage adapter: deploys blocks into a node's deployment home with its deployer
(Engage's, or the Datablox node deployer's).

Its presence is how the Datablox loader knows it runs under a deployment: it is only installed
on deployed nodes (in `<home>/python`), never in a standalone checkout's environment by default.
"""

import os

from .deploy import DeployError, deploy_block, install_block, install_spec_for_block, is_deployed


def bloxpath(home):
    """The BLOXPATH of a deployment home: the directory that holds its installed blocks."""
    return os.path.join(home, "blox")


def deployment_home():
    """This node's deployment home: $DATABLOX_HOME, else derived from where the adapter is
    installed (`<home>/python/datablox_engage_adapter/`)."""
    from_env = os.environ.get("DATABLOX_HOME")
    if from_env:
        return os.path.abspath(from_env)
    package_dir = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(package_dir))


__all__ = ["bloxpath", "deployment_home", "deploy_block", "install_block", "is_deployed", "install_spec_for_block", "DeployError"]
