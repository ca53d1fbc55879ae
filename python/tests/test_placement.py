"""Placement (`datablox_deployer.placement`): pinned blocks, balance by archive bytes,
determinism, per-node closures, and the errors of bad topologies and node lists."""

import hashlib
import json
import os
import shutil
import tempfile
import unittest

from deployer_tree import Tree, constraint, deployer, tree_archive, write_json

from datablox_deployer import placement
from datablox_deployer.placement import PlacementError

PLATFORM = ("ubuntu-linux", "14.04")


def noise(size, seed):
    """`size` incompressible bytes, the same every run."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256("{}:{}".format(seed, counter).encode()).digest()
        counter += 1
    return out[:size]


def topology(*blocks, **kwargs):
    """Blocks as (id, name) or (id, name, at); a chain of connections between them in order."""
    out = []
    for block in blocks:
        entry = {"id": block[0], "name": block[1], "version": "1.0", "args": {}}
        if len(block) > 2:
            entry["at"] = block[2]
        out.append(entry)
    connections = [{"from": "{}.output".format(a["id"]), "to": "{}.input".format(b["id"])} for a, b in zip(out, out[1:])]
    return {"blocks": out, "connections": kwargs.get("connections", connections)}


class PlacementCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="placement-")
        tree = Tree(self.tmp)
        # The caretaker: a service resource needing the framework, installed by the spec.
        tree.resource("care", "1.0", {"type": "Archive", "package_class": "GzippedTarArchive", "location": "care.tgz"},
                      environment=constraint("fw", "1.0"))
        tree.sw["care.tgz"] = tree_archive("care", {"big.bin": noise(3000, "care")})
        tree.resource("table", "1.0", {"type": "File", "location": "table.json"})
        tree.sw["table.json"] = noise(5000, "table")
        tree.resource("pipdep", "1.0", {"type": "Reference", "package_class": "PipLink", "location": "pipdep==1.0"})
        # Blocks with archives of distinct sizes; `heavy` also needs the 5000-byte table.
        for name, size in (("small", 100), ("medium", 1200), ("large", 2500)):
            tree.block(name, "1.0", files={"__init__.py": b"", "data.bin": noise(size, name)})
        tree.block("heavy", "1.0", needs=[constraint("table", "1.0"), constraint("pipdep", "1.0")])
        tree.block("other", "1.0", needs=[constraint("table", "1.0")])
        tree.write()
        write_json(os.path.join(tree.path, "metadata", "caretaker_install_spec.json"), [
            {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}},
            {"id": "caretaker", "key": {"name": "care", "version": "1.0"},
             "inside": {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"},
                        "port_mapping": {"host": "host"}}}])
        self.tree = tree

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def size(self, location):
        return os.path.getsize(os.path.join(self.tree.path, "sw_packages", location))

    def plan(self, topo, nodes):
        return placement.plan(self.tree.path, topo, nodes, platform=PLATFORM)


class Assign(PlacementCase):
    def test_pinned_blocks_stay_and_the_rest_balance_largest_first(self):
        weights = {"a": 10, "b": 30, "c": 20, "d": 5, "p": 25}
        topo = topology(("a", "X"), ("b", "X"), ("c", "X"), ("d", "X"), ("p", "X", "n2"))
        # p (25) pins n2. Then b 30 -> n1 (0), c 20 -> n3 (0), a 10 -> n3 (20 < 25 < 30), d 5 -> n2 (25 < 30).
        self.assertEqual(placement.assign(topo, ["n1", "n2", "n3"], weights),
                         {"p": "n2", "b": "n1", "c": "n3", "a": "n3", "d": "n2"})

    def test_ties_go_by_block_id_then_node_order(self):
        topo = topology(("z", "X"), ("y", "X"), ("x", "X"))
        # All weigh 0: x, y, z in id order, each to the node with fewer blocks, then w2 before w1.
        self.assertEqual(placement.assign(topo, ["w2", "w1"], {}), {"x": "w2", "y": "w1", "z": "w2"})

    def test_the_same_input_gives_the_same_placement_whatever_the_block_order(self):
        weights = {"a": 7, "b": 7, "c": 3, "d": 9}
        first = topology(("a", "X"), ("b", "X"), ("c", "X"), ("d", "X"))
        second = topology(("d", "X"), ("c", "X"), ("b", "X"), ("a", "X"))
        self.assertEqual(placement.assign(first, ["m", "w"], weights), placement.assign(second, ["m", "w"], weights))
        self.assertEqual(placement.assign(first, ["m", "w"], weights), {"d": "m", "a": "w", "b": "w", "c": "m"})

    def test_a_previous_placement_keeps_the_other_blocks_where_they_were(self):
        weights = {"a": 10, "b": 30, "c": 20, "d": 5}
        nodes = ["n1", "n2", "n3"]
        first = placement.assign(topology(("a", "X"), ("b", "X"), ("c", "X"), ("d", "X")), nodes, weights)
        self.assertEqual(first, {"b": "n1", "c": "n2", "a": "n3", "d": "n3"})
        pinned = topology(("a", "X"), ("b", "X", "n3"), ("c", "X"), ("d", "X"))
        # Placed afresh, pinning b moves three other blocks; with the previous placement, none.
        afresh = placement.assign(pinned, nodes, weights)
        self.assertEqual(len([b for b in "acd" if afresh[b] != first[b]]), 3)
        again = placement.assign(pinned, nodes, weights, previous=first)
        self.assertEqual(again, dict(first, b="n3"))
        # A new block goes to the lightest node; the others stay.
        added = placement.assign(topology(("a", "X"), ("b", "X"), ("c", "X"), ("d", "X"), ("e", "X")), nodes,
                                 dict(weights, e=1), previous=first)
        self.assertEqual(added, dict(first, e="n3"))

    def test_an_unknown_node_in_at_names_the_block(self):
        with self.assertRaises(PlacementError) as caught:
            placement.assign(topology(("a", "X"), ("b", "X", "w9")), ["m", "w1"], {})
        self.assertIn("block `b` is placed `at` node `w9`, which is not one of the nodes m, w1", str(caught.exception))
        self.assertEqual(caught.exception.code, 1)

    def test_node_names_must_be_plain_and_distinct(self):
        for nodes, message in (("m,w 1", "node name `w 1` is not a plain name"),
                               ("m,../x", "node name `../x` is not a plain name"),
                               ("m,,w", "node name `` is not a plain name"),
                               ("", "no node given"),
                               ("m,w,m", "node `m` is given twice")):
            with self.assertRaises(PlacementError) as caught:
                placement.parse_nodes(nodes)
            self.assertIn(message, str(caught.exception))
        self.assertEqual(placement.parse_nodes("master,w1,w-2"), ["master", "w1", "w-2"])


class Plan(PlacementCase):
    def test_every_node_gets_the_caretaker_and_exactly_its_blocks_closure(self):
        topo = topology(("s", "Small"), ("h", "Heavy", "m"), ("l", "Large"))
        plan = self.plan(topo, ["m", "w"])
        # h pinned on m; large (2500+) -> w (0 < h's load), small -> w? No: m holds h's table and
        # archive, more bytes than large, so small also goes to w.
        self.assertEqual(plan.assignment, {"h": "m", "l": "w", "s": "w"})
        names = lambda node: [k[0] for k in plan.closures[node]]
        self.assertEqual(names("m"), ["fw", "care", "table", "pipdep", "heavy"])
        self.assertEqual(names("w"), ["fw", "care", "large", "small"])
        self.assertEqual(plan.weights["h"], self.size("heavy__1_0.tgz") + self.size("table.json"))
        self.assertEqual(plan.weights["s"], self.size("small__1_0.tgz"))
        base = self.size("fw.tgz") + self.size("care.tgz")
        self.assertEqual(plan.node_bytes("w"), base + self.size("large__1_0.tgz") + self.size("small__1_0.tgz"))
        self.assertEqual(plan.to_json()["nodes"][0]["bytes"], plan.node_bytes("m"))

    def test_a_node_without_blocks_still_gets_the_caretaker(self):
        plan = self.plan(topology(("s", "Small", "m")), ["m", "idle"])
        self.assertEqual([k[0] for k in plan.closures["idle"]], ["fw", "care"])
        self.assertEqual([i["id"] for i in plan.spec("idle")], ["master-host", "caretaker"])
        self.assertEqual([i["id"] for i in plan.spec("m")], ["master-host", "caretaker", "__small__1_0"])

    def test_placed_topology_fills_at_and_keeps_the_rest(self):
        topo = topology(("s", "Small"), ("l", "Large", "w"))
        plan = self.plan(topo, ["m", "w"])
        placed = plan.placed_topology()
        self.assertEqual([(b["id"], b["at"]) for b in placed["blocks"]], [("s", "m"), ("l", "w")])
        self.assertEqual(placed["connections"], topo["connections"])
        self.assertNotIn("at", topo["blocks"][0])
        # Placing the placed topology again changes nothing.
        self.assertEqual(self.plan(placed, ["m", "w"]).assignment, plan.assignment)

    def test_the_json_plan_is_the_same_for_the_same_input(self):
        topo = topology(("s", "Small"), ("m1", "Medium"), ("l", "Large"), ("o", "Other"), ("h", "Heavy"))
        first = json.dumps(self.plan(topo, ["a", "b", "c"]).to_json(), sort_keys=True)
        self.assertEqual(first, json.dumps(self.plan(topo, ["a", "b", "c"]).to_json(), sort_keys=True))
        plan = json.loads(first)
        # heavy and other (each with the 5000-byte table) first, to a and b; then large, medium
        # and small all to c, which stays the lightest.
        self.assertGreaterEqual(plan["blocks"][4]["bytes"], plan["blocks"][3]["bytes"])
        self.assertEqual([(b["id"], b["node"]) for b in plan["blocks"]],
                         [("s", "c"), ("m1", "c"), ("l", "c"), ("o", "b"), ("h", "a")])

    def test_an_unknown_block_is_named(self):
        with self.assertRaises(PlacementError) as caught:
            self.plan(topology(("s", "Small"), ("q", "Nowhere")), ["m"])
        self.assertIn("block `q`: `Nowhere 1.0` is not in the extension", str(caught.exception))
        topo = topology(("s", "Small"))
        topo["blocks"][0]["version"] = "2.0"
        with self.assertRaises(PlacementError) as caught:
            self.plan(topo, ["m"])
        self.assertIn("defined versions: 1.0", str(caught.exception))
        with self.assertRaises(PlacementError) as caught:
            self.plan(topology(("s", "Smal")), ["m"])
        self.assertIn("help: did you mean `small`?", str(caught.exception))

    def test_a_connection_to_a_port_the_block_lacks_is_refused_before_anything_is_deployed(self):
        self.tree.block("upper", "1.0", files={"__init__.py": b"", "b_upper.py": (
            b"from datablox_framework.block import Block\n\n\nclass upper(Block):\n"
            b"    INPUTS = (\"input\",)\n    OUTPUTS = (\"output\",)\n")})
        self.tree.write()

        def chain(first, second):
            return topology(("s", "small"), ("upper", "upper"), ("m", "medium"),
                            connections=[{"from": "s.output", "to": first}, {"from": second, "to": "m.input"}])
        with self.assertRaises(PlacementError) as caught:
            self.plan(chain("upper.inptu", "upper.output"), ["a", "b"])
        self.assertEqual(str(caught.exception), "topology: connection #1: block `upper` (upper 1.0) has no input "
                                                "port `inptu` (help: did you mean `input`? its input ports: input)")
        with self.assertRaises(PlacementError) as caught:
            self.plan(chain("upper.input", "upper.input"), ["a", "b"])
        self.assertEqual(str(caught.exception), "topology: connection #2: `upper.input` is an input port of block "
                                                "`upper` (upper 1.0); `from` names an output port (help: its output "
                                                "ports: output)")
        # The ports it declares place; blocks that declare none (`small`, `medium`) are checked by
        # the caretaker once they load.
        self.assertEqual(sorted(self.plan(chain("upper.input", "upper.output"), ["a", "b"]).assignment),
                         ["m", "s", "upper"])

        # `deployer --home H run TOPOLOGY` refuses it before the home is made.
        path = os.path.join(self.tmp, "typo.json")
        write_json(path, chain("upper.inptu", "upper.output"))
        home = os.path.join(self.tmp, "home")
        result = deployer(home, self.tree, "run", path)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("error: {}: connection #1: block `upper` (upper 1.0) has no input port `inptu` (help: did "
                      "you mean `input`?".format(path), result.stderr)
        self.assertFalse(os.path.exists(home))

        # The archive is read, never followed through a link, and the module is parsed, not run.
        archive = os.path.join(self.tree.path, "sw_packages", "upper__1_0.tgz")
        os.remove(archive)
        os.symlink(os.path.join(self.tmp, "secret"), archive)
        with self.assertRaises(PlacementError) as caught:
            self.plan(chain("upper.input", "upper.output"), ["a", "b"])
        self.assertIn("{}: is a symbolic link".format(archive), str(caught.exception))

    def test_an_unknown_node_in_at_suggests_the_closest_node(self):
        with self.assertRaises(PlacementError) as caught:
            placement.assign(topology(("a", "X", "wokrer")), ["master", "worker"], {})
        self.assertIn("(help: did you mean `worker`? add it to --nodes", str(caught.exception))


class Topologies(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="topology-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, text):
        path = os.path.join(self.tmp, "t.json")
        with open(path, "w") as handle:
            handle.write(text)
        return path

    def error(self, text):
        path = self.write(text)
        with self.assertRaises(PlacementError) as caught:
            placement.read_topology(path)
        return str(caught.exception).replace(path, "FILE")

    def test_invalid_json_names_the_file_and_line(self):
        self.assertIn("FILE:3:5: not valid JSON", self.error('{\n  "blocks": [\n    ,\n  ]\n}\n'))

    def test_shape_errors_name_the_block_or_connection(self):
        self.assertIn("non-empty `blocks` list", self.error('{"blocks": []}'))
        self.assertIn("block #1 needs an `id`", self.error('{"blocks": [{"name": "A", "version": "1.0"}]}'))
        self.assertIn("block id `a` is used twice", self.error(
            '{"blocks": [{"id": "a", "name": "A", "version": "1.0"}, {"id": "a", "name": "B", "version": "1.0"}]}'))
        self.assertIn("block `a` needs a string `version`", self.error('{"blocks": [{"id": "a", "name": "A"}]}'))
        self.assertIn("block `a`: `at` must be a node name", self.error(
            '{"blocks": [{"id": "a", "name": "A", "version": "1.0", "at": 3}]}'))
        self.assertIn("connection #1: no block `b` in the topology", self.error(
            '{"blocks": [{"id": "a", "name": "A", "version": "1.0"}], "connections": [{"from": "a.out", "to": "b.in"}]}'))
        self.assertIn("connection #1: `to` must be `block.port`", self.error(
            '{"blocks": [{"id": "a", "name": "A", "version": "1.0"}], "connections": [{"from": "a.out", "to": "a"}]}'))

    def test_the_repositorys_topologies_are_valid(self):
        root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "topologies")
        names = sorted(n for n in os.listdir(root) if n.endswith(".json"))
        self.assertIn("word-count.json", names)
        for name in names:
            topo = placement.read_topology(os.path.join(root, name))
            self.assertTrue(topo["blocks"], name)


if __name__ == "__main__":
    unittest.main()
