"""A topology, read and checked once for every reader: the master, the caretaker and the node
deployer's placement. Standard library only and no other module of the framework: `dist` ships
this file beside the node deployer (`bin/datablox_framework/topology.py`).

A topology is JSON: `blocks` (each with a plain, unique `id`, a `name` and a `version`, optional
`args` (an object) and `at` (a node name)) and `connections` (`{"from": "block.port", "to":
"block.port"}` between blocks of the topology, without a cycle). A block id has no `.`, so an
end splits at its first `.`: the block id before it, the port after it.

Errors are TopologyError, whose message names the file (or what was checked) and the block or
connection; callers wrap it in their own error.
"""

import json
import re

# Matched with fullmatch: `$` would let a name with a trailing newline through.
NODE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
BLOCK_ID = re.compile(r"[A-Za-z0-9_-]+")


class TopologyError(ValueError):
    """A topology or a node name that cannot be used; the message says what, where and what to do."""


def check_node_name(name, where="--nodes"):
    """Raise TopologyError unless `name` is a plain node name (NODE_NAME)."""
    if not isinstance(name, str) or not NODE_NAME.fullmatch(name):
        raise TopologyError("{}: node name `{}` is not a plain name (help: letters, digits, `_` and `-`, "
                            "starting with a letter, at most 63 characters)".format(where, name))


def check_node_names(names, where="--nodes"):
    """Raise TopologyError unless `names` are plain node names, at least one, none twice. Names
    are compared case-insensitively: a node name is also a host name and a directory name (`W1`
    and `w1` are one host, and one directory on a case-insensitive file system)."""
    if not names:
        raise TopologyError("{}: no node given (help: e.g. --nodes master,w1,w2)".format(where))
    seen = set()
    for name in names:
        check_node_name(name, where)
        if name.lower() in seen:
            raise TopologyError("{}: node `{}` is given twice (help: name each node once; names are "
                                "compared without regard to case)".format(where, name))
        seen.add(name.lower())


def split_end(end):
    """`block.port` -> (block id, port)."""
    block_id, _, port = end.partition(".")
    return block_id, port


def read(path):
    """The topology in `path`, checked; errors name the file (and the line of a JSON error)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except OSError as error:
        raise TopologyError("cannot read topology {}: {}".format(path, error.strerror or error))
    except UnicodeDecodeError as error:
        raise TopologyError("{}: not UTF-8 text: {}".format(path, error))
    try:
        topology = json.loads(text)
    except ValueError as error:
        line, column = getattr(error, "lineno", 0), getattr(error, "colno", 0)
        raise TopologyError("{}:{}:{}: not valid JSON: {} (help: a topology is a JSON object with `blocks` "
                            "and `connections`, see topologies/word-count.json)".format(
                                path, line, column, getattr(error, "msg", error)))
    check(topology, path)
    return topology


def check(topology, where="topology"):
    """Raise TopologyError unless `topology` has the shape the module's documentation gives."""
    if not isinstance(topology, dict) or not isinstance(topology.get("blocks"), list) or not topology["blocks"]:
        raise TopologyError("{}: expected a JSON object with a non-empty `blocks` list".format(where))
    ids = set()
    for number, block in enumerate(topology["blocks"], 1):
        if not isinstance(block, dict):
            raise TopologyError("{}: block #{} is not an object".format(where, number))
        block_id = block.get("id")
        if not isinstance(block_id, str) or not BLOCK_ID.fullmatch(block_id):
            raise TopologyError("{}: block #{} needs an `id` of letters, digits, `_` and `-`, got {}".format(
                where, number, json.dumps(block_id)))
        if block_id in ids:
            raise TopologyError("{}: block id `{}` is used twice".format(where, block_id))
        ids.add(block_id)
        for field in ("name", "version"):
            if not isinstance(block.get(field), str) or not block[field].strip():
                raise TopologyError("{}: block `{}` needs a string `{}`".format(where, block_id, field))
        if "args" in block and not isinstance(block["args"], dict):
            raise TopologyError("{}: block `{}`: `args` must be an object".format(where, block_id))
        if "at" in block and not isinstance(block["at"], str):
            raise TopologyError("{}: block `{}`: `at` must be a node name".format(where, block_id))
    connections = topology.get("connections", [])
    if not isinstance(connections, list):
        raise TopologyError("{}: `connections` must be a list".format(where))
    upstream = dict((block_id, set()) for block_id in ids)
    for number, connection in enumerate(connections, 1):
        if not isinstance(connection, dict):
            raise TopologyError("{}: connection #{} is not an object".format(where, number))
        for end in ("from", "to"):
            value = connection.get(end)
            block_id, port = split_end(value) if isinstance(value, str) else ("", "")
            if not block_id or not port:
                raise TopologyError("{}: connection #{}: `{}` must be `block.port`, got {}".format(
                    where, number, end, json.dumps(value)))
            if block_id not in ids:
                raise TopologyError("{}: connection #{}: no block `{}` in the topology".format(where, number, block_id))
        upstream[split_end(connection["to"])[0]].add(split_end(connection["from"])[0])
    check_acyclic(upstream, where)


def check_acyclic(upstream, where):
    """Raise TopologyError when `upstream` ({block id: ids feeding it}) has a cycle: a run would
    never end, each block on it waiting for the end mark of the other."""
    done = set()
    while True:
        ready = [b for b in upstream if b not in done and upstream[b] <= done]
        if not ready:
            break
        done.update(ready)
    if len(done) == len(upstream):
        return
    # Leave out the blocks that only hang below the cycle: what remains is on it.
    stuck = set(upstream) - done
    while True:
        ends = [b for b in stuck if not any(b in upstream[t] for t in stuck)]
        if not ends:
            break
        stuck -= set(ends)
    raise TopologyError("{}: the connections have a cycle through block(s) {}".format(where, ", ".join(sorted(stuck))))
