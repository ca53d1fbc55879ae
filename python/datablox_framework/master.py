"""The master: runs one topology across the caretakers of several nodes.

  python3 -m datablox_framework.master --topology FILE --nodes node=host:port,... [--home DIR]
                                       [--key-file FILE] [--tls-cert PEM --tls-key PEM --tls-ca PEM]
                                       [--timeout S] [--json]

Every connection to a caretaker starts with the handshake of `auth`: the master and the
caretaker each prove they hold the cluster key (--key-file, default `<home>/config/cluster.key`
of the home below), and every request and answer is tagged; with --tls-*, inside TLS.

0. The topology is read and checked by `topology`, the rules the node deployer applies too.
1. Placement: a block with `at` runs on that node; the others are placed by the node deployer of
   a deployed home (`--home`, else $DATABLOX_HOME, else the home this module is installed in),
   `<home>/engage/bin/deployer place --dry-run --json`, so that `deploy` and the master place
   alike; with a single node, everything runs there.
2. Every caretaker answers `ping` with the node its home was deployed as (when a placement
   deployed it): a name other than its --nodes name fails the run before anything is prepared
   ("`w1` answered as `w2`: check --nodes").
3. Each node's caretaker gets its part (`prepare`, see `caretaker`): its blocks, the connections
   between them (in process), and the connections with other nodes, each an `inbound` or
   `outbound` data connection. It deploys what it lacks and, for inbound data, listens.
4. The master checks the ports of every connection across nodes, then `start`s every part with
   the addresses of its peers: the node that receives listens, the node that sends connects, and
   data flows from sender to receiver only (`transport`: JSON frames, back-pressure, an end mark).
5. It `wait`s for every part and prints the per-block counts on stderr, as human output goes
   (`--json`: one JSON object on stdout, with `generations`: the installed state each node's
   part ran against).

A node that cannot be reached, answers with an error, or stops answering (its caretaker died)
fails the run, naming the node; the other parts are aborted, so their caretakers stay usable.
Nothing waits forever: every request has a timeout, and the run has `--timeout`.
Exit codes: 0 the run finished, 1 it failed (or the topology is bad), 2 bad usage.
"""

import argparse
import difflib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from . import auth, transport
from . import topology as rules
from .block import Port

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# How long a caretaker may take to answer a short request (ping, start, wait, abort).
REQUEST_TIMEOUT = 10.0
WAIT_POLL = 0.2
# A part's own timeout comes this much after the run's, so that the master, which then aborts
# every part, is the one that reports a run out of time.
PART_GRACE = 5.0
# The longest answer line read from a caretaker.
MAX_ANSWER = 64 * 1024 * 1024


class MasterError(Exception):
    """The run cannot be done or failed; `node` names the node at fault when there is one."""

    def __init__(self, message, node=None, help=None):
        Exception.__init__(self, message)
        self.node = node
        self.help = help
        self.cause = None


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


def parse_nodes(text):
    """`a=host:port,b=host:port` -> ordered [(name, host, port)]."""
    nodes = []
    for item in [i.strip() for i in text.split(",") if i.strip()]:
        name, equals, address = item.partition("=")
        host, colon, port = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # an IPv6 address, as in [::1]:5555
        if not equals or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError("--nodes: `{}` is not `node=host:port` (help: e.g. --nodes "
                             "master=127.0.0.1:5555,w1=127.0.0.1:5556)".format(item))
        nodes.append((name, host, int(port)))
    if not nodes:
        raise UsageError("--nodes: no node given (help: --nodes node=host:port,...)")
    try:
        rules.check_node_names([name for name, _, _ in nodes])
    except rules.TopologyError as error:
        raise UsageError(str(error))
    return nodes


def read_topology(path):
    """The topology in `path`, checked (`datablox_framework.topology`)."""
    try:
        return rules.read(path)
    except rules.TopologyError as error:
        raise MasterError(str(error))


def default_home():
    """$DATABLOX_HOME, else the home this module is deployed in (`<home>/python/datablox_framework`)."""
    if os.environ.get("DATABLOX_HOME"):
        return os.environ["DATABLOX_HOME"]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return here if os.path.isdir(os.path.join(here, "engage", "bin")) else None


def place(topology, node_names, home):
    """{block id: node}: `at` where given, else the node deployer's placement rule."""
    unknown = [b for b in topology["blocks"] if "at" in b and b["at"] not in node_names]
    if unknown:
        close = difflib.get_close_matches(unknown[0]["at"], list(node_names), n=1)
        raise MasterError("block `{}` is placed `at` node `{}`, which is not in --nodes ({})".format(
            unknown[0]["id"], unknown[0]["at"], ", ".join(node_names)),
            help="{}add the node to --nodes, or change the block's `at`".format(
                "did you mean `{}`? ".format(close[0]) if close else ""))
    if all("at" in b for b in topology["blocks"]) or len(node_names) == 1:
        return dict((b["id"], b.get("at", node_names[0])) for b in topology["blocks"])
    engage = os.path.join(home, "engage") if home else None
    deployer = os.path.join(engage, "bin", "deployer") if engage else None
    if deployer is None or not os.path.isfile(deployer):
        raise MasterError("blocks without `at` need the placement of a deployed home's extension, and {} "
                          "has none".format(engage or "no home is known"),
                          help="pass --home DIR (a home deployed with `deploy --home DIR`), or give every "
                               "block an `at`")
    # The home's own deployer places them (`deploy place --dry-run --json`), in its own process:
    # the deployer is not a package of this one's path.
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "topology.json")
        with open(path, "w") as handle:
            json.dump(topology, handle)
        process = subprocess.run([sys.executable, deployer, "place", "--tree", engage, "--topology", path,
                                  "--nodes", ",".join(node_names), "--dry-run", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        answer = json.loads(process.stdout)
    except ValueError:
        answer = {"error": process.stderr.strip() or "exit code {}".format(process.returncode)}
    if process.returncode != 0 or "error" in answer:
        raise MasterError("placement: {}".format(answer.get("error")))
    return dict((block["id"], block["node"]) for block in answer["blocks"])


def split(topology, assignment):
    """Each node's part, and the connections across nodes [(id, {from, to}, source node, target node)]."""
    parts = {}
    for block in topology["blocks"]:
        spec = dict((k, v) for k, v in block.items() if k != "at")
        parts.setdefault(assignment[block["id"]], {"blocks": [], "connections": [], "inbound": [], "outbound": []})
        parts[assignment[block["id"]]]["blocks"].append(spec)
    across = []
    for number, connection in enumerate(topology.get("connections", []), 1):
        source_node = assignment[rules.split_end(connection["from"])[0]]
        target_node = assignment[rules.split_end(connection["to"])[0]]
        ends = {"from": connection["from"], "to": connection["to"]}
        if source_node == target_node:
            parts[source_node]["connections"].append(ends)
            continue
        connection_id = "c{}".format(number)
        parts[source_node]["outbound"].append(dict(ends, id=connection_id, node=target_node))
        parts[target_node]["inbound"].append(dict(ends, id=connection_id, node=source_node))
        across.append((connection_id, ends, source_node, target_node))
    return parts, across


class Link(object):
    """The control connection to one node's caretaker: line-delimited JSON requests, each line
    tagged by the session of the handshake."""

    def __init__(self, name, host, port, key, tls=None):
        self.name, self.host, self.port = name, host, port
        self.key = key
        self.tls = tls
        self.session = None
        self.sock = None
        self._buffer = b""
        self.lost = None

    def __str__(self):
        return "node `{}` ({})".format(self.name, transport.address_text(self.host, self.port))

    def connect(self, timeout=None):
        timeout = REQUEST_TIMEOUT if timeout is None else timeout
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
            # The first request follows the handshake's last message at once: without this,
            # Nagle's algorithm holds it for the caretaker's delayed ACK (40 ms on Linux).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            raise MasterError("{} cannot be reached: {}".format(self, error), self.name,
                              help="start its caretaker (`<home>/engage/bin/deployer --home <home> start`), "
                                   "or fix its address in --nodes")
        try:
            if self.tls is not None:
                self.sock = self.tls.client(self.sock, timeout)
            self.session = auth.client_handshake(self.sock, self.key, "control", timeout)
        except auth.AuthError as error:
            self.close()
            self.lost = "{} refused: {}".format(self, error)
            raise MasterError(self.lost, self.name,
                              help="the master and every caretaker need the same cluster key (--key-file; "
                                   "a node's is <home>/config/cluster.key)")

    def request(self, message, timeout=None):
        if self.lost is not None:
            raise self._lost()
        timeout = REQUEST_TIMEOUT if timeout is None else timeout
        try:
            self.sock.settimeout(max(timeout, 0.5))
            self.sock.sendall(self.session.seal_line(json.dumps(message).encode("utf-8")))
            while b"\n" not in self._buffer:
                if len(self._buffer) > MAX_ANSWER:
                    raise OSError("an answer over {} bytes".format(MAX_ANSWER))
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("the connection closed")
                self._buffer += chunk
        except socket.timeout:
            self.lost = "{} did not answer `{}` within {:g} s".format(self, message.get("op"), timeout)
        except OSError as error:
            self.lost = "{} stopped answering during `{}` ({}): its caretaker died?".format(
                self, message.get("op"), error)
        if self.lost is not None:
            self.close()
            raise self._lost()
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(self.session.open_line(line).decode("utf-8"))
        except auth.AuthError as error:
            self.lost = "{} answered `{}` with a line that failed its check: {}".format(self, message.get("op"), error)
            self.close()
            raise self._lost()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.lost = "{} answered `{}` with something that is not a JSON object".format(self, message.get("op"))
            self.close()
            raise self._lost()
        return answer

    def _lost(self):
        error = MasterError(self.lost, self.name)
        error.cause = "lost"
        return error

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


def check_identity(link, home_node):
    """A caretaker whose home was deployed as a node (`home_node`) must be given that name."""
    if isinstance(home_node, str) and home_node.lower() != link.name.lower():
        raise MasterError("`{}` answered as `{}`: check --nodes ({} is the caretaker of node `{}`)".format(
            link.name, home_node, transport.address_text(link.host, link.port), home_node), link.name,
            help="give each node the address of its own caretaker")


def _in_parallel(links, call):
    """call(link) for each link in threads; {name: answer or MasterError}."""
    results = {}

    def one(link):
        try:
            results[link.name] = call(link)
        except MasterError as error:
            results[link.name] = error

    threads = [threading.Thread(target=one, args=(link,)) for link in links]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join()
    return results


def port_hint(name, ports, direction):
    """" (did you mean `X`? its DIRECTION ports: ...)" for a port name that a block lacks."""
    names = sorted(n for n, p in ports.items() if p["direction"] == direction)
    close = difflib.get_close_matches(name, names, n=1)
    return " ({}its {} ports: {})".format("did you mean `{}`? ".format(close[0]) if close else "", direction,
                                          ", ".join(names) or "none")


def check_ports(across, answers):
    """Every connection across nodes joins an output to an input that gets the fields it needs."""
    for connection_id, ends, source_node, target_node in across:
        (source, source_port), (target, target_port) = (rules.split_end(e) for e in (ends["from"], ends["to"]))
        output = answers[source_node]["ports"].get(source, {}).get(source_port)
        needed = answers[target_node]["ports"].get(target, {}).get(target_port)
        where = "connection {} -> {}".format(ends["from"], ends["to"])
        if output is None or output["direction"] != Port.OUTPUT:
            raise MasterError("{}: block `{}` on node `{}` has no output port `{}`{}".format(
                where, source, source_node, source_port,
                port_hint(source_port, answers[source_node]["ports"].get(source, {}), Port.OUTPUT)))
        if needed is None or needed["direction"] != Port.INPUT:
            raise MasterError("{}: block `{}` on node `{}` has no input port `{}`{}".format(
                where, target, target_node, target_port,
                port_hint(target_port, answers[target_node]["ports"].get(target, {}), Port.INPUT)))
        if output["fields"] is not None and needed["fields"] is not None:
            missing = [f for f in needed["fields"] if f not in output["fields"]]
            if missing:
                raise MasterError("{}: the output lacks field(s) {}".format(where, ", ".join(missing)))


def run(topology, nodes, key, timeout=600.0, home=None, tls=None):
    """Run `topology` on `nodes` ([(name, host, port)]) with the cluster `key` (and `tls`, an
    `auth.TLS`, when given); returns the result (see `main`) or raises MasterError naming the
    node at fault."""
    started = time.time()
    deadline = started + timeout
    names = [n for n, _, _ in nodes]
    assignment = place(topology, names, home)
    parts, across = split(topology, assignment)
    links = [Link(name, host, port, key, tls) for name, host, port in nodes]
    run_id = uuid.uuid4().hex
    try:
        for link in links:
            link.connect()
        for link in links:
            answer = link.request({"op": "ping"})
            if not answer.get("ok"):
                raise MasterError("{} does not answer `ping`: {}".format(link, answer.get("error")), link.name)
            check_identity(link, answer.get("home_node"))
        busy = [link for link in links if link.name in parts]
        prepared = _in_parallel(busy, lambda link: link.request(
            {"op": "prepare", "run": run_id, "node": link.name, "part": parts[link.name],
             "timeout": max(deadline - time.time(), 1.0) + PART_GRACE}, timeout=max(deadline - time.time(), 1.0)))
        for link in busy:
            answer = prepared[link.name]
            if isinstance(answer, MasterError):
                raise answer
            if not answer.get("ok"):
                raise MasterError("{} cannot run its part: {}".format(link, answer.get("error")), link.name)
        check_ports(across, prepared)
        by_name = dict((link.name, link) for link in links)
        for link in busy:
            peers = {}
            for connection_id, _, source_node, target_node in across:
                if source_node == link.name:
                    peers[connection_id] = [by_name[target_node].host, prepared[target_node]["data_port"]]
            answer = link.request({"op": "start", "run": run_id, "node": link.name, "peers": peers})
            if not answer.get("ok"):
                raise MasterError("{} cannot start its part: {}".format(link, answer.get("error")), link.name)
        finished = _wait(busy, run_id, deadline, timeout)
    finally:
        for link in links:
            if link.sock is not None and link.lost is None:
                try:
                    link.request({"op": "abort", "run": run_id, "node": link.name, "reason": "the run ended"})
                except MasterError:
                    pass
            link.close()
    counts, delivered = {}, 0
    for name, answer in finished.items():
        delivered += answer["result"]["delivered"]
        for block_id, block_counts in answer["counts"].items():
            counts[block_id] = dict(block_counts, node=name)
    return {"ok": True, "run": run_id, "placement": assignment,
            "counts": dict((b["id"], counts[b["id"]]) for b in topology["blocks"]),
            "delivered": delivered, "nodes": dict((n, transport.address_text(h, p)) for n, h, p in nodes),
            "deployed": dict((link.name, prepared[link.name].get("deployed", [])) for link in busy),
            # Which installed state each node's part ran against (`caretaker.generation`).
            "generations": dict((link.name, prepared[link.name].get("generation")) for link in busy),
            "seconds": round(time.time() - started, 3)}


def _wait(links, run_id, deadline, timeout):
    """Poll every part until all are done; on a failure, name the node at fault."""
    pending = list(links)
    finished = {}
    while pending:
        if time.time() > deadline:
            raise MasterError("the run did not finish within {:g} s (still running on: {})".format(
                timeout, ", ".join("node `{}`".format(link.name) for link in pending)),
                help="raise --timeout, or look at the caretakers' logs (<home>/log/caretaker.log)")
        for link in list(pending):
            try:
                answer = link.request({"op": "wait", "run": run_id, "node": link.name, "timeout": WAIT_POLL})
            except MasterError as error:
                raise _blame(pending, run_id, error)
            if answer.get("state") == "done":
                finished[link.name] = answer
                pending.remove(link)
            elif not answer.get("ok"):
                failure = MasterError("{}: {}".format(link, answer.get("error")), link.name)
                failure.cause = answer.get("cause")
                raise _blame(pending, run_id, failure)
    return finished


# Which failure explains the others: a dead node first (its peers' data connections break), then
# a block that failed (its node closes its data connections), then a broken connection.
_RANK = {"lost": 0, "block": 1, "timeout": 2, "connection": 3, "aborted": 4}


def _blame(links, run_id, failure):
    """The failure to report among `failure` and those of the other unfinished parts."""
    failures = [failure]
    for link in links:
        if link.name == failure.node:
            continue
        try:
            answer = link.request({"op": "wait", "run": run_id, "node": link.name, "timeout": 0.5}, timeout=5.0)
        except MasterError as error:
            failures.append(error)
            continue
        if not answer.get("ok"):
            other = MasterError("{}: {}".format(link, answer.get("error")), link.name)
            other.cause = answer.get("cause")
            failures.append(other)
    failures.sort(key=lambda f: _RANK.get(f.cause, 5))
    first = failures[0]
    if len(failures) > 1:
        first = MasterError("{}\n  then: {}".format(first, "\n  then: ".join(str(f) for f in failures[1:])),
                            first.node, first.help)
    return first


def print_result(result, out):
    rows = [("block", "node", "emitted", "received")]
    for block_id, counts in result["counts"].items():
        rows.append((block_id, counts["node"], str(counts["emitted"]), str(counts["received"])))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        out.write("{}  {}  {}  {}\n".format(row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                                           row[2].rjust(widths[2]), row[3].rjust(widths[3])))
    used = sorted(set(c["node"] for c in result["counts"].values()))
    out.write("ok: {} block(s) on {} node(s), {} batch(es) delivered in {:.2f} s\n".format(
        len(result["counts"]), len(used), result["delivered"], result["seconds"]))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m datablox_framework.master",
        description="Run a topology across the caretakers of several nodes and print per-block counts.",
        epilog="exit codes: 0 the run finished, 1 it failed, 2 bad usage")
    parser.add_argument("--topology", required=True, help="the topology (JSON: blocks, with `at`, and connections)")
    parser.add_argument("--nodes", required=True,
                        help="node=host:port,... (each node's caretaker; an IPv6 host in brackets: [::1]:5555)")
    parser.add_argument("--home", help="a deployed home whose extension places blocks without `at` "
                                       "(default: $DATABLOX_HOME, else the home this master runs from)")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the cluster key (default: <home>/config/cluster.key of the home above)")
    parser.add_argument("--tls-cert", metavar="PEM", help="with --tls-key and --tls-ca: TLS to every caretaker, "
                                                          "with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--tls-ca", metavar="PEM", help="the CA that signed the caretakers' certificates")
    parser.add_argument("--timeout", type=float, default=600.0, help="fail the run after this many seconds (600)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on stdout (else a table on stderr)")
    options = parser.parse_args(argv)
    try:
        nodes = parse_nodes(options.nodes)
        if not 0 < options.timeout <= 30 * 24 * 3600:
            raise UsageError("--timeout must be a number of seconds above 0 and at most 30 days")
    except UsageError as error:
        parser.print_usage(sys.stderr)
        sys.stderr.write("error: {}\n".format(error))
        return EXIT_USAGE
    home = options.home or default_home()
    try:
        key_file = options.key_file or (auth.key_path(home) if home else None)
        if key_file is None:
            raise MasterError("no cluster key: this master runs from no deployed home",
                              help="pass --key-file FILE (the key the caretakers hold), or --home DIR")
        try:
            key = auth.read_key(key_file)
            tls = auth.tls_from_options(options.tls_cert, options.tls_key, options.tls_ca)
        except auth.KeyFileError as error:
            raise MasterError(str(error))
        topology = read_topology(options.topology)
        result = run(topology, nodes, key, options.timeout, home, tls)
    except MasterError as error:
        sys.stderr.write("error: {}\n".format(error))
        if error.help:
            sys.stderr.write("help: {}\n".format(error.help))
        if options.json:
            sys.stdout.write(json.dumps({"ok": False, "error": str(error), "node": error.node}, sort_keys=True) + "\n")
        return EXIT_FAILED
    if options.json:
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    else:
        print_result(result, sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
