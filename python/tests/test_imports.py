"""No circular imports among the modules of python/: the import graph, read with `ast` from every
module's source (imports inside functions count too), has no cycle."""

import ast
import os
import unittest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("datablox_deployer", "datablox_framework", "datablox_engage_adapter")


def module_files():
    """{dotted module name: path} of our packages' modules."""
    found = {}
    for package in PACKAGES:
        for name in sorted(os.listdir(os.path.join(PYTHON_DIR, package))):
            if name.endswith(".py"):
                module = package if name == "__init__.py" else "{}.{}".format(package, name[:-3])
                found[module] = os.path.join(PYTHON_DIR, package, name)
    return found


def imports_of(module, path, known):
    """The modules of `known` that `module` (at `path`) imports, anywhere in its source."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from package import name` imports the module package.name when there is one.
            names = [base] + ["{}.{}".format(base, alias.name) for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def find_cycle(graph):
    """One cycle of `graph` ({node: set of nodes}) as a list of nodes, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


class ImportGraphTest(unittest.TestCase):
    def test_no_circular_imports(self):
        files = module_files()
        graph = dict((module, imports_of(module, path, files)) for module, path in files.items())
        # The graph is read right: the command line reaches the deploy through its imports.
        self.assertIn("datablox_deployer.deploy", graph["datablox_deployer.cli"])
        cycle = find_cycle(graph)
        self.assertIsNone(cycle, "circular import: " + " -> ".join(cycle or []))

    def test_finds_a_cycle(self):
        self.assertEqual(find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}), ["a", "b", "c", "a"])
        self.assertIsNone(find_cycle({"a": {"b"}, "b": set()}))


if __name__ == "__main__":
    unittest.main()
