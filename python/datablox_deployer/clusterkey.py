"""Which cluster key a deploy installs: the one a home has, else a new one (`deploy --home`);
for a topology deploy, one key per output directory, `DIR/cluster.key` beside the output of
`deploy place` (kept when DIR is written again), copied into every node's
`<home>/config/cluster.key`.

The file itself (32 bytes as 64 hex digits and a newline, mode 0600, owned by the user) is
written and read by the framework's `datablox_framework.auth`, which `dist` ships beside this
package: the deployer, the caretaker and the master refuse the same files. The key itself is
never printed, logged, put in `--json` output, a plan or a bundle's checksummed files.
"""

import os

from datablox_framework import auth

from . import DeployError

NAME = "cluster.key"


def read(path, what="the cluster key"):
    """The key in `path` (`auth.read_key`); DeployError naming the file when it is missing,
    unsafe or malformed."""
    try:
        return auth.read_key(path, what)
    except auth.KeyFileError as error:
        raise DeployError(str(error))


def install(path, key=None):
    """Make `path` hold the cluster key: `key` when given (replacing another), else the key
    already there, else a new one. Returns whether the file changed."""
    if os.path.lexists(path):
        current = read(path)
        if key is None or key == current:
            return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    auth.write_key(path, key if key is not None else auth.new_key())
    return True


def for_output(out_dir, key_file=None):
    """The key of a topology deploy into `out_dir`: `--key-file`'s, else the one an earlier run
    left in `out_dir/cluster.key`, else a new one."""
    if key_file:
        return read(key_file, "the --key-file")
    existing = os.path.join(out_dir, NAME)
    if os.path.lexists(existing):
        return read(existing)
    return auth.new_key()
