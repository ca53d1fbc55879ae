"""Placement: which node runs each block of a topology, and what each node must hold.

A topology is the caretaker's JSON: `blocks` (each with `id`, `name`, `version`, `args`, and an
optional `at` naming a node) and `connections` (`{"from": "block.port", "to": "block.port"}`).
Blocks with `at` go to that node. The others are spread deterministically, balancing the archive
bytes per node: largest closure first (ties by block id), each to the node with the fewest bytes
so far (ties: the node with fewer blocks, then the order of the nodes given). A block's bytes are those of the archives its
closure adds to what every node holds anyway (the caretaker, the framework, the adapter); a
node's bytes are those of its whole closure.

Importing this module has no side effects. Two ways in:

  from datablox_deployer import placement
  plan = placement.plan(tree, topology, ["master", "w1", "w2"])   # tree: a `datablox/` dist
  plan.assignment            # {"count": "w1", ...}: block id -> node
  plan.placed_topology()     # the topology with every block's `at` filled
  plan.to_json()             # what `deploy place --json` prints

  placement.assign(topology, nodes, weights)   # the pure rule alone: weights = {block id: bytes}

`tree` is an extension tree holding every block of the topology: `target/dist/datablox`, or the
copy `<home>/engage` of a home deployed with `--home`. A bundle, or a home deployed from one
(`--homes-dir`), holds only its node's part: there, run the placed topology (`DIR/topology.json`,
every block with its `at`) as it is; `assign(topology, nodes, {})` needs no tree and keeps it.
From a shell, or another process: `python3 <tree>/bin/deploy place --topology FILE --nodes a,b
--dry-run --json` (or `<home>/engage/bin/deployer place ...`) prints `to_json()`.

A topology and node names are read and checked by the framework's `topology` module, which
`dist` ships beside this package. Before placing, `check_blocks` makes sure every block is in the
extension and every connection names ports its blocks have: an output port in `from`, an input
port in `to`, as each block's class declares them (`INPUTS`, `OUTPUTS`: read from the block's
module in its archive with `datablox_framework.block.declared_ports`, without running it), so a
typo is refused before anything is deployed. Errors are PlacementError (a DeployError, exit code
1) naming the file, block or node.
"""

import errno
import json
import os
import stat
import tarfile
import zlib

from datablox_framework import topology as rules
from datablox_framework.block import Port, declared_ports
from datablox_framework.naming import mangle

from . import DeployError, safetar
from .extension import DEFAULT_SPEC, Extension, did_you_mean, driver_dir_name, key_text, key_tuple, keys_text
from .resolve import HOST_ID, Resolver, detect_platform, host_instance

# Resolution needs a host; only the keys of the closure matter here, not the home's paths.
PLACEHOLDER_HOME = "/nonexistent-datablox-home"
# A block module larger than this is not read for its ports: a refusal, not a memory budget.
MAX_MODULE_BYTES = 1 << 20


class PlacementError(DeployError):
    """A topology or a node list that cannot be placed; the message names what and where."""


def parse_nodes(text, where="--nodes"):
    """`a,b,c` (or a list) -> ["a", "b", "c"]; each a plain name, none twice, at least one."""
    nodes = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    try:
        rules.check_node_names([] if nodes == [""] else nodes, where)
    except rules.TopologyError as error:
        raise PlacementError(str(error))
    return nodes


def read_topology(path):
    """The topology in `path`, checked (`datablox_framework.topology`)."""
    try:
        return rules.read(path)
    except rules.TopologyError as error:
        raise PlacementError(str(error))


def check_topology(value, where="topology"):
    """Raise PlacementError unless `value` is a topology (`datablox_framework.topology`)."""
    try:
        rules.check(value, where)
    except rules.TopologyError as error:
        raise PlacementError(str(error))


def block_key(block):
    """The resource key of a topology block: its name lower-cased, its version as written."""
    return (block["name"].lower(), block["version"])


def assign(topology, nodes, weights, previous=None):
    """The placement rule alone, pure: {block id: node}.

    Blocks with `at` go there (an unknown node raises PlacementError naming the block). A block
    without `at` that `previous` ({block id: node}: the last placement of the same blocks) put on
    a node that is still one of `nodes` stays there, so that pinning, adding or removing one block
    moves no other. The rest, largest `weights[id]` first (ties by id), go each to the node with
    the smallest load so far (ties: fewer blocks, then the order of `nodes`); a node's load starts
    at the weights of the blocks already on it. `weights` maps block ids to bytes (a missing id
    weighs 0)."""
    nodes = parse_nodes(nodes)
    check_topology(topology)
    load = dict((node, 0) for node in nodes)
    count = dict((node, 0) for node in nodes)
    result = {}
    free = []
    for block in topology["blocks"]:
        at = block.get("at")
        if at is None:
            kept = (previous or {}).get(block["id"])
            if kept in load:
                result[block["id"]] = kept
                load[kept] += weights.get(block["id"], 0)
                count[kept] += 1
            else:
                free.append(block["id"])
            continue
        if at not in load:
            raise PlacementError("block `{}` is placed `at` node `{}`, which is not one of the nodes {} (help: {}add "
                                 "it to --nodes, or change the block's `at`)".format(block["id"], at, ", ".join(nodes),
                                                                                     did_you_mean(at, nodes)))
        result[block["id"]] = at
        load[at] += weights.get(block["id"], 0)
        count[at] += 1
    for block_id in sorted(free, key=lambda b: (-weights.get(b, 0), b)):
        node = min(nodes, key=lambda n: (load[n], count[n], nodes.index(n)))
        result[block_id] = node
        load[node] += weights.get(block_id, 0)
        count[node] += 1
    return result


class Sizes(object):
    """The bytes of each key's package file in `<tree>/sw_packages` (0 for pip, dummy and system
    packages, which carry no file)."""

    def __init__(self, extension):
        self.extension = extension

    def file_of(self, key):
        packages = self.extension.packages.get(key) or []
        if not packages:
            return None
        package = packages[0]
        if package.get("type") in ("Archive", "File") and package.get("location"):
            return package["location"]
        return None

    def of(self, key):
        location = self.file_of(key)
        if location is None:
            return 0
        path = self.extension.path("sw_packages", location)
        try:
            return os.path.getsize(path)
        except OSError:
            raise PlacementError("{} is missing: `{}` needs it (help: rebuild the dist with `cargo xtask dist`, "
                                 "or place with a tree that holds it)".format(path, key_text(key)))


def spec_requests(spec):
    """[(key, instance id, config_port)] of an install spec's instances, the host left out."""
    out = []
    for instance in spec:
        key = instance.get("key", {})
        if key.get("name") == "dynamic-host":
            continue
        out.append((key_tuple(key), instance.get("id"), dict(instance.get("config_port") or {})))
    return out


class Plan(object):
    """Where each block runs and what each node holds (keys in install order) and weighs."""

    def __init__(self, topology, nodes, assignment, closures, sizes, files, weights, base_spec, platform):
        self.topology = topology
        self.nodes = nodes
        self.assignment = assignment
        self.closures = closures
        self.sizes = sizes
        self.files = files
        self.weights = weights
        self.base_spec = base_spec
        self.platform = platform

    def blocks_of(self, node):
        return [b["id"] for b in self.topology["blocks"] if self.assignment[b["id"]] == node]

    def node_bytes(self, node):
        return sum(self.sizes[k] for k in self.closures[node])

    def placed_topology(self):
        """The topology with `at` filled on every block (the master runs it as placed)."""
        placed = json.loads(json.dumps(self.topology))
        for block in placed["blocks"]:
            block["at"] = self.assignment[block["id"]]
        return placed

    def block_keys(self, node):
        """The distinct keys of the blocks placed on `node`, sorted (the order they install in)."""
        return sorted(set(block_key(b) for b in self.topology["blocks"] if self.assignment[b["id"]] == node))

    def spec(self, node):
        """The install spec of `node`: the caretaker's install spec as it is, then one instance
        per block key placed there (ids as the node deployer gives blocks deployed on demand)."""
        spec = json.loads(json.dumps(self.base_spec))
        base = set(k for k, _, _ in spec_requests(spec))
        for key in self.block_keys(node):
            if key in base:
                continue
            spec.append({"id": "__" + driver_dir_name({"name": key[0], "version": key[1]}),
                         "key": {"name": key[0], "version": key[1]},
                         "inside": {"id": HOST_ID, "key": {"name": "dynamic-host", "version": "*"},
                                    "port_mapping": {"host": "host"}}})
        return spec

    def _block(self, block_id):
        for block in self.topology["blocks"]:
            if block["id"] == block_id:
                return block
        raise KeyError(block_id)

    def to_json(self):
        blocks = []
        for block in self.topology["blocks"]:
            blocks.append({"id": block["id"], "name": block["name"], "version": block["version"],
                           "node": self.assignment[block["id"]], "pinned": "at" in block,
                           "bytes": self.weights[block["id"]]})
        nodes = []
        for node in self.nodes:
            nodes.append({"name": node, "blocks": self.blocks_of(node), "bytes": self.node_bytes(node),
                          "closure": [{"key": {"name": k[0], "version": k[1]}, "file": self.files[k],
                                       "bytes": self.sizes[k]} for k in self.closures[node]]})
        return {"platform": {"name": self.platform[0], "version": self.platform[1]},
                "blocks": blocks, "nodes": nodes}


def closure(extension, host, requests):
    """The keys `requests` ([(key, id, config)]) install, dependencies first, each once."""
    config = {}
    for key, instance_id, given in requests:
        if given and instance_id:
            config.setdefault(instance_id, {}).update(given)
    resolver = Resolver(extension, host, [], config)
    for key, instance_id, _ in requests:
        resolver.request(key, instance_id)
    return [planned.key for planned in resolver.order]


def previous_assignment(plan_file, topology):
    """{block id: node} of the plan.json a previous placement wrote (`to_json`), for the blocks of
    `topology` with the same name and version; {} when there is none or it cannot be read."""
    try:
        with open(plan_file) as handle:
            document = json.load(handle)
        blocks = dict((b["id"], b) for b in document["blocks"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    found = {}
    for block in topology.get("blocks", []):
        old = blocks.get(block.get("id"))
        if isinstance(old, dict) and old.get("name") == block.get("name") and old.get("version") == block.get("version") \
                and isinstance(old.get("node"), str):
            found[block["id"]] = old["node"]
    return found


def check_blocks(extension, topology, where="topology"):
    """Raise PlacementError unless every block of `topology` (checked, read from `where`) is in
    `extension` and every connection joins an output port of its `from` block to an input port
    of its `to` block (`block_ports`)."""
    for block in topology["blocks"]:
        key = block_key(block)
        if key not in extension.definitions:
            versions = [k[1] for k in extension.find(block["name"])]
            if os.path.isfile(extension.path("bundle.json")):
                hint = ("help: {} holds one node's part of the extension; place with the whole dist, or give "
                        "the placed topology (DIR/topology.json), whose blocks all have `at`".format(extension.root))
            elif versions:
                hint = "defined versions: " + ", ".join(versions)
            else:
                hint = "help: {}is the block's manifest in manifests/? Defined: {}".format(
                    did_you_mean(block["name"], sorted(set(k[0] for k in extension.order))), keys_text(extension.order))
            raise PlacementError("block `{}`: `{} {}` is not in the extension {} ({})".format(
                block["id"], block["name"], block["version"], extension.root, hint))
    blocks = dict((block["id"], block) for block in topology["blocks"])
    ports = {}
    for number, connection in enumerate(topology.get("connections", []), 1):
        for end, direction, other in (("from", Port.OUTPUT, Port.INPUT), ("to", Port.INPUT, Port.OUTPUT)):
            block_id, port = rules.split_end(connection[end])
            block = blocks[block_id]
            key = block_key(block)
            if key not in ports:
                ports[key] = block_ports(extension, key)
            declared = ports[key]
            if declared is None or port in declared[direction]:
                continue
            what = "block `{}` ({} {})".format(block_id, block["name"], block["version"])
            if port in declared[other]:
                raise PlacementError("{}: connection #{}: `{}` is an {} port of {}; `{}` names an {} port (help: "
                                     "its {} ports: {})".format(where, number, connection[end], other, what, end,
                                                                direction, direction, ", ".join(declared[direction]) or "none"))
            raise PlacementError("{}: connection #{}: {} has no {} port `{}` (help: {}its {} ports: {})".format(
                where, number, what, direction, port, did_you_mean(port, declared[direction]), direction,
                ", ".join(declared[direction]) or "none"))


def block_ports(extension, key):
    """The ports block `key` declares (`declared_ports`: {"input": [...], "output": [...]}), read
    from `b_<module>.py` at the top of its archive in `sw_packages`, which must be a regular file
    (a link is refused, never followed), within safetar's budget of decompressed bytes; None when
    it declares none, or has no archive or no such module (a resource that is not a block)."""
    location = Sizes(extension).file_of(key)
    if location is None:
        return None
    path = extension.path("sw_packages", location)
    module = "b_{}.py".format(mangle(key[0]))
    help_text = "(help: rebuild the dist with `cargo xtask dist`)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise PlacementError("{}: {} {}".format(
            path, "is a symbolic link" if error.errno == errno.ELOOP else error.strerror, help_text))
    source = None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PlacementError("{}: is not a regular file {}".format(path, help_text))
        try:
            with tarfile.open(fileobj=handle, mode="r|gz") as archive:
                for member in archive:
                    if member.offset_data + member.size > safetar.budget(info.st_size):
                        break
                    if member.isfile() and member.name.split("/")[1:] == [module]:
                        if member.size > MAX_MODULE_BYTES:
                            raise PlacementError("{}: `{}` is larger than {} bytes; its ports are not read (help: "
                                                 "keep the block's module small)".format(path, member.name,
                                                                                         MAX_MODULE_BYTES))
                        source = archive.extractfile(member).read()
                        break
        except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
            raise PlacementError("{}: cannot read the archive of `{}`: {} {}".format(path, key_text(key), error, help_text))
    if source is None:
        return None
    try:
        return declared_ports(source, mangle(key[0]), "{}:{}".format(path, module))
    except ValueError as error:
        raise PlacementError(str(error))


def plan(tree, topology, nodes, platform=None, spec_file=DEFAULT_SPEC, previous=None, where="topology"):
    """Place `topology` (a checked dict, read from `where`) on `nodes` with the extension at
    `tree` (a path or an Extension); `previous`, {block id: node}, keeps blocks where they were
    (`assign`). Returns a Plan; raises PlacementError (an unknown block or port, an `at` naming
    no node, a bad node name) or the resolver's Unsatisfiable."""
    nodes = parse_nodes(nodes)
    check_topology(topology)
    extension = tree if isinstance(tree, Extension) else Extension(tree)
    platform = tuple(platform) if platform else detect_platform(extension)
    host = host_instance(PLACEHOLDER_HOME, platform)
    base_spec = extension.spec(spec_file)
    base = spec_requests(base_spec)
    check_blocks(extension, topology, where)
    sizes_of = Sizes(extension)
    base_keys = closure(extension, host, base)
    weights = {}
    for block in topology["blocks"]:
        keys = closure(extension, host, base + [(block_key(block), None, {})])
        extra = [k for k in keys if k not in base_keys]
        weights[block["id"]] = sum(sizes_of.of(k) for k in extra)
    assignment = assign(topology, nodes, weights, previous)
    closures, sizes, files = {}, {}, {}
    for node in nodes:
        keys = sorted(set(block_key(b) for b in topology["blocks"] if assignment[b["id"]] == node))
        closures[node] = closure(extension, host, base + [(k, None, {}) for k in keys])
        for key in closures[node]:
            sizes[key] = sizes_of.of(key)
            files[key] = sizes_of.file_of(key)
    return Plan(topology, nodes, assignment, closures, sizes, files, weights, base_spec, platform)
