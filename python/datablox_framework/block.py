"""The block base class, its ports and `Log`, the batch of records that flows between blocks.

A block only talks to its ports: it never knows which blocks it is connected to. Delivery is the
job of whoever runs the block (`runtime.Graph` in-process); that runner installs an emitter with
`Block.set_emitter` and calls the life-cycle methods in this order:

    configure(config)    its keys checked against ARGS, then on_load(config): declare ports,
                         read the configuration; the ports checked against INPUTS and OUTPUTS
    on_start()           sources generate their data here (and return, or call self.shutdown())
    recv_push(port, log) once per batch arriving on an input port
    on_shutdown()        after every upstream block has shut down; may still push (totals, counts)
"""

import ast
import difflib


class BlockError(Exception):
    """A block was used in a way that breaks its declared contract (unknown port, missing field)."""


class ConfigError(BlockError):
    """A block's configuration is missing a value or holds a value of the wrong kind."""


class Port(object):
    """A named port of a block, with a direction and the fields its records carry.

    `fields` lists the field names a record must have: for an input port, the fields the block
    reads; for an output port, the fields it promises to emit. `fields=None` on an output port
    means "whatever came in" (pass-through blocks such as Filter cannot know in advance).
    """

    # Directions.
    INPUT = "input"
    OUTPUT = "output"

    # Delivery kinds. Legacy Datablox also had PULL (request/response) ports; this runtime only
    # implements one-way pushes, so that is the only kind a block may declare.
    PUSH = "push"

    def __init__(self, name, direction, fields, kind=PUSH):
        if direction not in (Port.INPUT, Port.OUTPUT):
            raise BlockError("port `{}`: direction must be Port.INPUT or Port.OUTPUT, got {!r}".format(name, direction))
        if kind != Port.PUSH:
            raise BlockError("port `{}`: only Port.PUSH ports are supported, got {!r}".format(name, kind))
        self.name = name
        self.direction = direction
        self.kind = kind
        self.fields = None if fields is None else list(fields)

    def __repr__(self):
        return "Port({!r}, {!r}, {!r})".format(self.name, self.direction, self.fields)


class Log(object):
    """A batch of records stored as named columns of equal length, like legacy Datablox's Log.

    `log.log` is the underlying dict {field name: list of values}; row `i` is made of the `i`-th
    value of every column. Columns are kept at equal length so that a batch is always a table.
    """

    def __init__(self, columns=None):
        self.log = {}
        if columns:
            for name in sorted(columns):
                self.append_field(name, columns[name])

    @classmethod
    def from_rows(cls, rows):
        """Build a log from dicts that all have the same keys."""
        log = cls()
        for row in rows:
            log.append_row(row)
        return log

    def fields(self):
        """The field names, sorted."""
        return sorted(self.log)

    def __len__(self):
        for values in self.log.values():
            return len(values)
        return 0

    def __contains__(self, field):
        return field in self.log

    def __getitem__(self, field):
        return self.log[field]

    def append_field(self, name, values):
        """Add a whole column; it must be as long as the columns already there."""
        values = list(values)
        if name in self.log:
            raise BlockError("log already has a field `{}`".format(name))
        if self.log and len(values) != len(self):
            raise BlockError("field `{}` has {} values but the log has {} rows".format(name, len(values), len(self)))
        self.log[name] = values

    def append_row(self, row):
        """Append one record; after the first row, every row must have exactly the same fields."""
        if not self.log:
            for name, value in row.items():
                self.log[name] = [value]
            return
        if set(row) != set(self.log):
            raise BlockError("row fields {} differ from the log's fields {}".format(sorted(row), self.fields()))
        for name, value in row.items():
            self.log[name].append(value)

    def iter_rows(self):
        """Yield each record as a dict {field: value}."""
        names = list(self.log)
        for index in range(len(self)):
            yield dict((name, self.log[name][index]) for name in names)

    def copy(self):
        """A copy whose columns can be changed without touching this log's."""
        duplicate = Log()
        duplicate.log = dict((name, list(values)) for name, values in self.log.items())
        return duplicate

    def __eq__(self, other):
        return isinstance(other, Log) and self.log == other.log

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "Log({!r})".format(self.log)


_REQUIRED = object()


def _drop_push(block, port, log):
    """The emitter of a block that is not connected to anything: pushes go nowhere."""


class Block(object):
    """Base class of every block. Subclasses override `on_load` and some of the other hooks.

    The class attribute `__doc__` of a block says what it does; `block_name`/`block_version`
    are filled in by the loader so that messages can name the block the way users do.
    """

    block_name = None
    block_version = None
    # The keys the block's `args` (its config) may hold: a tuple of names (or a dict of name: what
    # it is). None: not declared,
    # any key is taken. Declared, a key outside it is refused before `on_load`, naming the
    # closest declared key, so a typo is caught when the topology is loaded, not by its effects.
    ARGS = None
    # The names of its ports, by direction, written out: `INPUTS = ("input",)`, `OUTPUTS =
    # ("output", "totals")`. They are read without running the block (`declared_ports`), so that
    # placement refuses a connection to a port the block lacks before anything is deployed;
    # `configure` checks that `on_load` adds exactly these ports, so the two cannot drift apart.
    # None for both: not declared, and connections are checked only once the blocks are loaded.
    INPUTS = None
    OUTPUTS = None

    def __init__(self, block_id=None):
        self.id = block_id if block_id is not None else type(self).__name__
        self.ports = {}
        self.finished = False
        self._emit = _drop_push

    def configure(self, config):
        """Check `config` against ARGS, then `on_load(config)`: how every runner loads a block."""
        config = dict(config or {})
        if self.ARGS is not None:
            for key in sorted(config):
                if key not in self.ARGS:
                    close = difflib.get_close_matches(key, list(self.ARGS), n=1)
                    raise ConfigError("block `{}`: unknown argument `{}`{} (its arguments: {})".format(
                        self.id, key, " (did you mean `{}`?)".format(close[0]) if close else "",
                        ", ".join(sorted(self.ARGS)) or "none"))
        self.on_load(config)
        if self.INPUTS is None and self.OUTPUTS is None:
            return
        for direction, attribute in ((Port.INPUT, "INPUTS"), (Port.OUTPUT, "OUTPUTS")):
            declared = sorted(getattr(self, attribute) or ())
            added = sorted(name for name, port in self.ports.items() if port.direction == direction)
            if declared != added:
                raise BlockError("block `{}`: on_load adds the {} port(s) {} but `{}` declares {} (help: make them "
                                 "agree; placement checks connections against `{}`)".format(
                                     self.id, direction, ", ".join(added) or "none", attribute,
                                     ", ".join(declared) or "none", attribute))

    # -- life cycle, overridden by blocks -------------------------------------------------

    def on_load(self, config):
        """Declare ports and read `config` (a dict). Called once, before anything else."""

    def on_start(self):
        """Generate data, for sources. Other blocks have nothing to do here."""

    def recv_push(self, port, log):
        """Handle a batch `log` arriving on input port `port`."""
        raise BlockError("block `{}` received data on port `{}` but does not implement recv_push".format(self.id, port))

    def on_shutdown(self):
        """Release resources and emit any final result. Called once, last."""

    # -- services for blocks ---------------------------------------------------------------

    def add_port(self, name, direction, fields, kind=Port.PUSH):
        """Declare a port. `direction` is Port.INPUT or Port.OUTPUT; `fields` a list of names."""
        if name in self.ports:
            raise BlockError("block `{}` declares port `{}` twice".format(self.id, name))
        port = Port(name, direction, fields, kind)
        self.ports[name] = port
        return port

    def add_input(self, name, fields):
        """Declare an input port that needs records with `fields`."""
        return self.add_port(name, Port.INPUT, fields)

    def add_output(self, name, fields):
        """Declare an output port whose records carry `fields` (None: whatever came in)."""
        return self.add_port(name, Port.OUTPUT, fields)

    def input_ports(self):
        return dict((n, p) for n, p in self.ports.items() if p.direction == Port.INPUT)

    def output_ports(self):
        return dict((n, p) for n, p in self.ports.items() if p.direction == Port.OUTPUT)

    def port(self, name, direction):
        """The port `name`, checked to exist and to have `direction`."""
        port = self.ports.get(name)
        if port is None:
            close = difflib.get_close_matches(name, sorted(self.ports), n=1)
            raise BlockError("block `{}` has no port `{}` ({}its ports: {})".format(
                self.id, name, "did you mean `{}`? ".format(close[0]) if close else "",
                ", ".join(sorted(self.ports)) or "none"))
        if port.direction != direction:
            raise BlockError("port `{}` of block `{}` is an {} port, not an {} port".format(name, self.id, port.direction, direction))
        return port

    def push(self, port, log):
        """Emit `log` on output port `port`. Empty logs are dropped: they carry nothing."""
        declared = self.port(port, Port.OUTPUT)
        if not isinstance(log, Log):
            raise BlockError("block `{}` pushed a {} on port `{}`, expected a Log".format(self.id, type(log).__name__, port))
        if declared.fields is not None:
            missing = [f for f in declared.fields if f not in log.log]
            if missing and len(log):
                raise BlockError("block `{}` pushed on port `{}` a log without field(s) {}".format(self.id, port, ", ".join(missing)))
        if len(log):
            self._emit(self, port, log)

    def push_rows(self, port, rows, batch_size=None):
        """Push dicts as logs on `port`: one log per run of rows with the same fields (a log is a
        table, so rows with other fields start a new log), at most `batch_size` rows per log."""
        batch, batch_fields = [], None
        for row in rows:
            fields = frozenset(row)
            if batch and (fields != batch_fields or (batch_size and len(batch) >= batch_size)):
                self.push(port, Log.from_rows(batch))
                batch = []
            batch.append(row)
            batch_fields = fields
        if batch:
            self.push(port, Log.from_rows(batch))

    def shutdown(self):
        """Say that this source is done. Returning from `on_start` means the same thing."""
        self.finished = True

    def set_emitter(self, emit):
        """Install `emit(block, port, log)`, called for every push. Used by runners only."""
        self._emit = emit if emit is not None else _drop_push

    def config_value(self, config, name, default=_REQUIRED, kind=None):
        """`config[name]`, or `default`; a ConfigError names the block and the field when it is missing
        or not of type `kind` (a type or a tuple of types)."""
        if name in config:
            value = config[name]
        elif default is not _REQUIRED:
            return default
        else:
            raise ConfigError("block `{}`: missing config value `{}`".format(self.id, name))
        if kind is not None and not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError("block `{}`: config value `{}` must be {}, got {!r}".format(self.id, name, expected, value))
        return value


def declared_ports(source, class_name, filename="<block module>"):
    """{Port.INPUT: [names], Port.OUTPUT: [names]}: the INPUTS and OUTPUTS that class `class_name`
    of a block module's `source` declares in its own body, read with `ast` without running the
    module; None when it declares neither (a missing one declares no port). ValueError naming the file and line
    when the module is not Python or a declaration is not a tuple of names written out."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ValueError("{}:{}: not a Python module: {}".format(filename, getattr(error, "lineno", 0), error))
    found = {}
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name == class_name):
            continue
        for statement in node.body:
            targets = statement.targets if isinstance(statement, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("INPUTS", "OUTPUTS"):
                    try:
                        value = ast.literal_eval(statement.value)
                    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                        value = None
                    if not (isinstance(value, (tuple, list)) and all(isinstance(name, str) for name in value)):
                        raise ValueError("{}:{}: `{}` of block class `{}` must be a tuple of port names written out "
                                         "(help: e.g. `{} = (\"input\",)`)".format(
                                             filename, statement.lineno, target.id, class_name, target.id))
                    found[target.id] = list(value)
    if not found:
        return None
    return {Port.INPUT: found.get("INPUTS", []), Port.OUTPUT: found.get("OUTPUTS", [])}
