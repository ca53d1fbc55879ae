"""The machine-dependency graph of Engage's multi-node install plans (not used on one node)."""


class digraph(object):
    def __init__(self):
        self.nodes = []
        self.edges = set()

    def add_node(self, n):
        if n not in self.nodes:
            self.nodes.append(n)

    def get_node(self, n):
        return n

    def add_edge(self, a, b):
        self.edges.add((a, b))

    def print_graph(self):
        print("digraph: nodes %s edges %s" % (self.nodes, sorted(self.edges)))

    def toposort(self):
        order, seen = [], set()

        def visit(n):
            if n in seen:
                return
            seen.add(n)
            for (a, b) in self.edges:
                if b == n:
                    visit(a)
            order.append(n)
        for n in self.nodes:
            visit(n)
        return order
