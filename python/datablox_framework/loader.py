"""Find a block by display name and version on BLOXPATH, import it and return its class.

BLOXPATH is a list of directories, each holding block directories (`file_crawler__1_0/`). It
comes, in this order, from the caller, from the `BLOXPATH` environment variable, or from the
Datablox Engage adapter. The adapter is only importable on a deployed node, so its presence is
how the loader knows it runs under a deployment (deployed mode: a missing block is deployed
into the home, with what it needs, before it is loaded); without it, the loader runs standalone.
"""

import importlib
import os
import sys

from . import naming
from .block import Block


class BlockNotFound(LookupError):
    """The block is not installed in any BLOXPATH directory, or does not define its class."""


def _split(path_list):
    if isinstance(path_list, str):
        return [p for p in path_list.split(os.pathsep) if p]
    return [p for p in path_list if p]


def deployment_adapter():
    """The `datablox_engage_adapter` module if it is importable, else None."""
    try:
        import datablox_engage_adapter
    except ImportError:
        return None
    return datablox_engage_adapter


def resolve_bloxpath(bloxpath=None):
    """The list of BLOXPATH directories: from `bloxpath` (a list or an os.pathsep-separated
    string), else from $BLOXPATH, else from the adapter's deployment home; else an error."""
    if bloxpath is not None:
        return _split(bloxpath)
    from_env = os.environ.get("BLOXPATH")
    if from_env:
        return _split(from_env)
    adapter = deployment_adapter()
    if adapter is not None:
        return [adapter.bloxpath(adapter.deployment_home())]
    raise BlockNotFound(
        "no BLOXPATH: pass one, set the BLOXPATH environment variable to the directories holding "
        "the blocks, or run under a deployment (with `datablox_engage_adapter` installed)")


def deployed_mode(bloxpath=None):
    """The adapter when the loader runs under a deployment (no BLOXPATH given or in the
    environment, and `datablox_engage_adapter` importable), else None: standalone."""
    if bloxpath is not None or os.environ.get("BLOXPATH"):
        return None
    return deployment_adapter()


def find_block_dir(name, version, bloxpath=None):
    """The BLOXPATH directory that holds the block `name` `version`, or a BlockNotFound. In
    deployed mode, a block that is not installed is deployed (with what it needs) first."""
    adapter = deployed_mode(bloxpath)
    if adapter is not None:
        try:
            adapter.install_block(adapter.deployment_home(), name, version)
        except adapter.DeployError as error:
            raise BlockNotFound("block `{} {}` is not installed and deploying it failed: {}".format(name, version, error))
    directory = naming.block_dir(name, version)
    module_file = naming.block_module(name) + ".py"
    searched = resolve_bloxpath(bloxpath)
    for root in searched:
        if os.path.isfile(os.path.join(root, directory, module_file)):
            return os.path.abspath(root)
    raise BlockNotFound(
        "block `{} {}` is not installed: no `{}/{}` under BLOXPATH ({})".format(
            name, version, directory, module_file, os.pathsep.join(searched) or "empty"))


def load_block_class(name, version, bloxpath=None):
    """Import `<blockdir>.b_<module>` from BLOXPATH and return its class `<mangled name>`."""
    root = find_block_dir(name, version, bloxpath)
    # Block packages are imported by their top-level name (tests and blocks themselves use
    # `from file_crawler__1_0.b_file_crawler import file_crawler`), so the BLOXPATH directory
    # goes on sys.path rather than loading the file under a private name: one class object only.
    if root not in [os.path.abspath(p) for p in sys.path if p]:
        sys.path.insert(0, root)
    module_name = naming.block_dir(name, version) + "." + naming.block_module(name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BlockNotFound("block `{} {}`: cannot import `{}` from {}: {}".format(name, version, module_name, root, error))
    class_name = naming.block_class(name)
    block_class = getattr(module, class_name, None)
    if block_class is None:
        raise BlockNotFound("block `{} {}`: module `{}` defines no class `{}`".format(name, version, module_name, class_name))
    if not (isinstance(block_class, type) and issubclass(block_class, Block)):
        raise BlockNotFound("block `{} {}`: `{}.{}` is not a subclass of datablox_framework.block.Block".format(
            name, version, module_name, class_name))
    block_class.block_name = name
    block_class.block_version = version
    return block_class


def create_block(block_id, name, version, config=None, bloxpath=None):
    """Instantiate the block and configure it (`Block.configure`: ARGS checked, then `on_load`)."""
    block = load_block_class(name, version, bloxpath)(block_id)
    block.configure(config)
    return block
