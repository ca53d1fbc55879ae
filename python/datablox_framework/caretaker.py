"""The per-node caretaker: runs blocks on this node, deploying them first when needed.

A node is first deployed with only the caretaker, the framework and the adapter. When a request
names a block whose directory is not under `<home>/blox`, the caretaker asks the Datablox Engage
adapter to deploy it (and what it needs) into this home; a block already there is used as it is.
The caretaker itself never imports a block: every `load`, every `run` and every part of a run
across nodes is done by a worker process of its own (`worker`), started for it, so that each run
imports what is installed now (a redeploy reaches the next run, with no restart) and a block that
crashes ends only its worker, whose failure the caretaker reports (`cause: "block"`, its exit
status) before it serves the next request. Answers about runs carry `generation`, the installed
state the run used (`generation()`).

Run as a server:  python3 -m datablox_framework.caretaker --home DIR --port N [--key-file FILE]
A client first proves it holds the cluster key (`auth`: `<home>/config/cluster.key` unless
--key-file says otherwise) and checks that the caretaker holds it too; a client that does not is
logged (its address) and disconnected, and nothing is served to it. Then it speaks
line-delimited JSON on 127.0.0.1, one request per line, one answer per line, each line tagged
(`auth.Session.seal_line`) and at most MAX_LINE bytes long:
  {"op": "ping"}  -> {"ok": true, "pid": ..., "running": [run ids], "generation": ..., "home_node": ...}
     `home_node`: the node the home was deployed as (`home_node()`), null for a home deployed alone
  {"op": "load", "name": "Dump", "version": "1.0"} -> {"ok": true, "block": {...}}: deployed if
     needed, then imported and configured (`config`) in a worker, which describes it and exits
  {"op": "run", "topology": {"blocks": [{"id": "src", "name": "Dir-Source", "version": "1.0",
                                         "args": {"directory": "/data"}}, ...],
                              "connections": [{"from": "src.output", "to": "count.input"}, ...]}}
      -> {"ok": true, "result": {"blocks": N, "delivered": N, "order": [...]},
          "counts": {"src": {"emitted": N, "received": N}, ...}, "deployed": ["Word-Count 1.0", ...],
          "generation": ...}
     Each run has its own worker and block instances (configured with their `args`); blocks that
     are not installed are deployed first, through the adapter. A failed run answers
     {"ok": false, "error": "...", "cause": "block"} (the worker's last error or exit status).
  {"op": "shutdown"}                               -> {"ok": true}, then the server stops
Errors answer {"ok": false, "error": "..."}.

A run across nodes (see `master`) gives each caretaker its part, in four steps on one connection:
  {"op": "prepare", "run": ID, "node": "w1", "timeout": S, "part": {"blocks": [...],
      "connections": [...in this node...],
      "inbound":  [{"id": "c2", "from": "hash.output", "to": "count.input", "node": "w2"}, ...],
      "outbound": [{"id": "c3", "from": "count.output", "to": "write.input", "node": "w3"}, ...]}}
      -> {"ok": true, "data_port": N or null, "ports": {block: {port: {direction, fields}}},
          "deployed": [...], "generation": ..., "home_node": ...}
     deploys the blocks missing, then starts the part's worker, which loads them and, if data
     comes from other nodes, listens for it;
  {"op": "start", "run": ID, "node": "w1", "peers": {"c3": [host, data_port of w3], ...}} -> {"ok": true}
     the worker connects the outbound data connections (`transport`) and runs the part
     (`runtime.Dataflow`);
  {"op": "wait", "run": ID, "node": "w1", "timeout": S}
      -> {"ok": true, "state": "running"} until it finishes, then
         {"ok": true, "state": "done", "counts": {...}, "result": {"blocks": N, "delivered": N}}
         or {"ok": false, "state": "failed", "error": "...", "cause": "block"|"connection"|"timeout"};
  {"op": "abort", "run": ID, "node": "w1"}         -> {"ok": true}: stops it if it runs, forgets it
     (without `node`: every part of the run). One caretaker may hold parts of several nodes.
A part stops by itself at its timeout, and when the connection that prepared it closes (its
worker is killed).

The log (stderr, which `deployer start` sends to `<home>/log/caretaker.log`) has a line per
request (the peer, the op, the run and node; a `wait` only when it answers the part's end), per
deploy (the block, how long), per run (its blocks, the records they emitted, the result, the
generation) and per failure (why). Never a secret: the key goes to a worker over its channel only.
"""

import argparse
import binascii
import hashlib
import json
import logging
import math
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

from . import auth, loader, naming, transport, worker
from . import topology as rules

LOG = logging.getLogger("datablox")
# The longest control line read (its tag included); a longer one ends the connection.
MAX_LINE = 1024 * 1024
# The most seconds a request may ask for (a run's `timeout`): 30 days.
MAX_SECONDS = 30 * 24 * 3600.0
# The most seconds a `load` worker may take to import and configure its block.
LOAD_TIMEOUT = 600.0
# The directory that holds the framework this caretaker runs from (a home's `python/`).
FRAMEWORK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CaretakerError(Exception):
    """A block cannot be loaded on this node, or a request cannot be served."""


def seconds(request, field, default):
    """The number of seconds `request[field]` asks for: finite, positive, at most MAX_SECONDS."""
    value = request.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_SECONDS:
        raise CaretakerError("`{}`: `{}` must be a number of seconds above 0 and at most {:g}".format(
            request.get("op"), field, MAX_SECONDS))
    return float(value)


def generation(home):
    """Which installed state of `home` a run uses: the first 12 hex digits of the SHA-256 of
    `<home>/config/installed_resources.json` (every deploy that installs, replaces or removes a
    resource rewrites it), or None when nothing is installed."""
    try:
        with open(os.path.join(home, "config", "installed_resources.json"), "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()[:12]
    except OSError:
        return None


# What a log line shows of a peer's string as it is; anything else is quoted (no line breaks).
PLAIN = re.compile(r"[A-Za-z0-9_.:@-]{1,80}")


def shown(value):
    return value if isinstance(value, str) and PLAIN.fullmatch(value) else json.dumps(value)[:80]


def records(counts):
    """Records emitted by every block of a run, from its per-block counts."""
    return sum(c.get("emitted", 0) for c in counts.values())


def home_node(home):
    """The node name the deploy recorded in the home (`config/deployer.json`'s `node`: a home
    deployed from a placement's bundle), or None (a home deployed by itself)."""
    try:
        with open(os.path.join(home, "config", "deployer.json"), "rb") as handle:
            node = json.loads(handle.read().decode("utf-8")).get("node")
    except (OSError, ValueError, AttributeError):
        return None
    return node if isinstance(node, str) else None


class WorkerDied(CaretakerError):
    """The worker process ended without its answer."""


class Worker(object):
    """One worker process (`datablox_framework.worker`) and the caretaker's end of its channel,
    a socket pair whose other end only the child inherits."""

    def __init__(self, job, what):
        self.what = what
        parent, child = socket.socketpair()
        environment = dict(os.environ)
        # The framework the caretaker runs from (a home's `python/`) first: the worker imports
        # whatever is installed there now.
        environment["PYTHONPATH"] = os.pathsep.join([FRAMEWORK_ROOT] + [
            p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p and p != FRAMEWORK_ROOT])
        try:
            with open(os.devnull, "rb") as devnull:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "datablox_framework.worker", "--channel", str(child.fileno())],
                    pass_fds=(child.fileno(),), stdin=devnull, env=environment)
        except OSError as error:
            parent.close()
            raise CaretakerError("cannot start the worker process of {}: {}".format(what, error))
        finally:
            child.close()
        self.channel = worker.Channel(parent)
        try:
            self.channel.send(job)
        except OSError:
            pass  # a worker that died at once is reported by the first `answer`

    def answer(self, timeout=None):
        """The worker's next message; WorkerDied when it ended without one, CaretakerError when it
        took more than `timeout` seconds (it is killed)."""
        try:
            message = self.channel.receive(timeout)
        except socket.timeout:
            self.kill()
            raise CaretakerError("the worker process of {} did not answer within {:g} s".format(self.what, timeout))
        except (OSError, ValueError):
            message = None
        if message is None:
            self.kill(wait_first=5.0)
            raise WorkerDied("the worker process of {} {}".format(self.what, exit_text(self.process.returncode)))
        return message

    def send(self, message):
        try:
            self.channel.send(message)
        except OSError:
            pass  # the next `answer` says how it ended

    def kill(self, wait_first=0.0):
        """End the process (after `wait_first` seconds for it to end by itself) and reap it."""
        if wait_first:
            try:
                self.process.wait(wait_first)
            except subprocess.TimeoutExpired:
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.channel.close()


def exit_text(code):
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal {}".format(-code)
        return "was killed by {} (signal {})".format(name, -code)
    return "exited with code {}".format(code)


class Part(object):
    """This node's part of a run across nodes, run by its worker process: prepared, running,
    then done, failed or aborted."""

    def __init__(self, run_id, node, process, deadline, deployed, generation):
        self.run_id = run_id
        self.node = node
        self.worker = process
        self.deadline = deadline
        self.deployed = deployed
        self.generation = generation
        self.finished = threading.Event()
        self.state = "prepared"
        self.error = None
        self.cause = None
        self.final = None
        self.began = time.time()
        self._lock = threading.Lock()

    def start(self, peers):
        """Have the worker connect the outbound data connections to `peers`, then run."""
        with self._lock:
            if self.state != "prepared":
                raise CaretakerError("run `{}` is {}, not prepared".format(self.run_id, self.state))
            self.state = "running"
        self.worker.send({"op": "start", "peers": peers})
        try:
            answer = self.worker.answer(max(self.deadline - time.time(), 1.0))
        except CaretakerError as error:
            self._finish("failed", str(error), "block")
            raise CaretakerError(self.error)
        if not answer.get("ok"):
            self._finish("failed", answer.get("error"), answer.get("cause", "block"))
            raise CaretakerError(self.error)
        thread = threading.Thread(target=self._follow, name="datablox-run-{}".format(self.run_id))
        thread.daemon = True
        thread.start()

    def _follow(self):
        try:
            final = self.worker.answer()
        except CaretakerError as error:
            self._finish("failed", str(error), "block")
            return
        if final.get("state") == "done":
            self.final = final
            self._finish("done")
        else:
            self._finish("failed", final.get("error"), final.get("cause", "block"))

    def _finish(self, state, error=None, cause=None):
        with self._lock:
            if self.finished.is_set():
                return
            self.state = state
            self.error = error
            self.cause = cause
            self.finished.set()
        where = "run {} node {}".format(self.run_id, shown(self.node))
        if state == "done":
            LOG.info("%s: done, %d block(s), %d record(s) emitted, generation %s, %.2f s", where,
                     self.final["result"]["blocks"], records(self.final["counts"]), self.generation,
                     time.time() - self.began)
        else:
            LOG.warning("%s: %s (%s): %s", where, state, cause, error)
        # The worker's data connections close with it, which its peers notice.
        self.worker.kill(wait_first=2.0 if state == "done" else 0.0)

    def wait(self, timeout):
        """The answer to `wait`: the state once finished, or `running` after `timeout` seconds."""
        if self.state != "prepared":
            self.finished.wait(timeout)
        answer = {"ok": self.state not in ("failed", "aborted"), "state": self.state, "node": self.node,
                  "generation": self.generation}
        if self.error is not None:
            answer["error"] = self.error
            answer["cause"] = self.cause
        if self.state == "done":
            answer["counts"] = self.final["counts"]
            answer["result"] = self.final["result"]
        return answer

    def abort(self, reason):
        self._finish("aborted", error="aborted: {}".format(reason), cause="aborted")


class Caretaker(object):
    """Runs the blocks of the node whose deployment home is `home`, each run in a worker process.

    `adapter` is the deployment adapter module (anything with `deploy_block(home, name, version)`);
    by default the `datablox_engage_adapter` package if it is importable, else none. `key` is the
    cluster key, which its data connections prove (runs across nodes need it); `tls` (an
    `auth.TLS`) wraps every connection in TLS too.
    """

    _DEFAULT = object()

    def __init__(self, home, adapter=_DEFAULT, data_host=transport.DEFAULT_HOST, key=None, tls=None):
        self.home = os.path.abspath(home)
        self.adapter = loader.deployment_adapter() if adapter is Caretaker._DEFAULT else adapter
        self.data_host = data_host
        self.key = key
        self.tls = tls
        # Parts of runs across nodes, by (run id, node).
        self.parts = {}
        # The workers of `load` and `run` requests in progress.
        self.workers = set()
        self._lock = threading.Lock()

    @property
    def bloxpath(self):
        return os.path.join(self.home, "blox")

    def block_path(self, name, version):
        return os.path.join(self.bloxpath, naming.block_dir(name, version))

    def _job(self, kind, **fields):
        job = {"job": kind, "bloxpath": [self.bloxpath], "data_host": self.data_host,
               "key": binascii.hexlify(self.key).decode("ascii") if self.key else None,
               "tls": list(self.tls.files) if self.tls else None}
        job.update(fields)
        return job

    def _one_shot(self, job, what, timeout=None):
        """Start a worker for `job`, return its answer; the worker is tracked until it ends."""
        process = Worker(job, what)
        with self._lock:
            self.workers.add(process)
        try:
            return process.answer(timeout)
        finally:
            process.kill(wait_first=2.0)
            with self._lock:
                self.workers.discard(process)

    def load_block(self, name, version, config=None):
        """Deploy block `name` `version` if needed, then check in a worker that it imports and
        takes `config`; returns a summary."""
        try:
            key = naming.block_key(name, version)
        except ValueError as error:
            raise CaretakerError(str(error))
        with self._lock:
            deployed = self._ensure_installed(name, version)
        what = "`load` of `{} {}`".format(name, version)
        answer = self._one_shot(self._job("load", id="{}-{}".format(key["name"], version), name=name,
                                          version=version, config=config), what, LOAD_TIMEOUT)
        if not answer.get("ok"):
            raise CaretakerError("block `{} {}` is installed but cannot be loaded: {}".format(
                name, version, answer.get("error")))
        return dict(answer["block"], directory=self.block_path(name, version), deployed=deployed)

    def _ensure_installed(self, name, version):
        """Deploy the block through the adapter unless it is in BLOXPATH; returns whether it deployed."""
        deployed = False
        if not os.path.isdir(self.block_path(name, version)):
            if self.adapter is None:
                raise CaretakerError(
                    "block `{} {}` is not installed in {} and no deployment adapter is available "
                    "(help: install the block there, or install `datablox_engage_adapter` so the "
                    "caretaker can deploy it)".format(name, version, self.bloxpath))
            began = time.time()
            try:
                self.adapter.deploy_block(self.home, name, version)
            except Exception as error:
                LOG.warning("deploy of block `%s %s` failed after %.2f s: %s", name, version, time.time() - began, error)
                raise CaretakerError("deploying block `{} {}` failed: {}".format(name, version, error))
            LOG.info("deployed block `%s %s` in %.2f s", name, version, time.time() - began)
            if not os.path.isdir(self.block_path(name, version)):
                raise CaretakerError("the adapter reported success but `{}` does not exist".format(self.block_path(name, version)))
            deployed = True
        return deployed

    def _install_blocks(self, blocks, where="topology"):
        """Check the block specs and deploy those missing (here, before any worker starts);
        returns the blocks deployed."""
        if not isinstance(blocks, list):
            raise CaretakerError("a {} is an object with a `blocks` list and a `connections` list".format(where))
        deployed = []
        for index, spec in enumerate(blocks):
            if not isinstance(spec, dict) or not all(isinstance(spec.get(f), str) for f in ("id", "name", "version")):
                raise CaretakerError("{} block #{}: needs string `id`, `name` and `version`".format(where, index + 1))
            name, version = spec["name"], spec["version"]
            try:
                naming.block_key(name, version)
            except ValueError as error:
                raise CaretakerError("{} block `{}`: {}".format(where, spec["id"], error))
            with self._lock:
                if self._ensure_installed(name, version):
                    deployed.append("{} {}".format(name, version))
        return deployed

    def run_topology(self, topology):
        """Run a topology in a worker (see the module's doc); returns the answer."""
        try:
            rules.check(topology)
        except rules.TopologyError as error:
            raise CaretakerError(str(error))
        deployed = self._install_blocks(topology["blocks"])
        installed = generation(self.home)
        began = time.time()
        try:
            answer = self._one_shot(self._job("run", topology=topology), "the run")
        except WorkerDied as error:
            answer = {"ok": False, "error": str(error), "cause": "block"}
        if answer.get("ok"):
            LOG.info("run: done, %d block(s), %d record(s) emitted, generation %s, %.2f s",
                     answer["result"]["blocks"], records(answer["counts"]), installed, time.time() - began)
        else:
            LOG.warning("run: failed (%s): %s", answer.get("cause", "block"), answer.get("error"))
        answer.update(deployed=deployed, generation=installed)
        return answer

    # -- this node's part of a run across nodes (driven by datablox_framework.master) -----------

    def prepare_part(self, request):
        """Deploy this node's missing blocks, then start the part's worker, which loads them,
        checks its connections and, when data comes from other nodes, listens for it. Returns
        the answer's fields."""
        run_id, node = request.get("run"), request.get("node")
        part = request.get("part")
        if not isinstance(run_id, str) or not run_id or not isinstance(node, str) or not isinstance(part, dict):
            raise CaretakerError("`prepare` needs a string `run`, a string `node` and a `part` object")
        timeout = seconds(request, "timeout", 600)
        if self.key is None:
            raise CaretakerError("this caretaker has no cluster key, so it cannot take part in runs across nodes")
        key = (run_id, node)
        with self._lock:
            if key in self.parts:
                raise CaretakerError("run `{}` of node `{}` is already prepared here".format(run_id, node))
        deployed = self._install_blocks(part.get("blocks"), "part")
        installed = generation(self.home)
        deadline = time.time() + timeout
        process = Worker(self._job("part", run=run_id, node=node, part=part, deadline=deadline),
                         "run `{}` (node `{}`)".format(run_id, node))
        try:
            answer = process.answer(timeout)
        except CaretakerError:
            process.kill()
            raise
        if not answer.get("ok"):
            process.kill()
            raise CaretakerError(answer.get("error"))
        prepared = Part(run_id, node, process, deadline, deployed, installed)
        with self._lock:
            if key in self.parts:
                prepared.abort("prepared twice")
                raise CaretakerError("run `{}` of node `{}` is already prepared here".format(run_id, node))
            self.parts[key] = prepared
        return {"data_port": answer["data_port"], "ports": answer["ports"], "deployed": deployed,
                "generation": installed, "home_node": home_node(self.home)}

    def _part(self, request):
        run_id, node = request.get("run"), request.get("node")
        with self._lock:
            part = self.parts.get((run_id, node))
        if part is None:
            raise CaretakerError("no run `{}` of node `{}` here (help: `prepare` it first)".format(run_id, node))
        return part

    def abort_part(self, run_id, node=None, reason="aborted by the master"):
        """Stop the part of run `run_id` for `node` (every part of the run when None) if it still
        runs, and forget it; returns whether one was known."""
        with self._lock:
            keys = [k for k in self.parts if k[0] == run_id and node in (None, k[1])]
            parts = [self.parts.pop(k) for k in keys]
        for part in parts:
            part.abort(reason)
        return bool(parts)

    def shutdown(self):
        """Abort every part of a run and end every worker; returns the errors met (none)."""
        for run_id, node in list(self.parts):
            self.abort_part(run_id, node, "the caretaker is shutting down")
        with self._lock:
            workers = list(self.workers)
        for process in workers:
            process.kill()
        return []

    def handle(self, request):
        """Answer one decoded request (a dict). Never raises: errors become {"ok": false}."""
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request must be a JSON object"}
        op = request.get("op")
        try:
            if op == "ping":
                with self._lock:
                    running = sorted(set(k[0] for k, p in self.parts.items() if not p.finished.is_set()))
                return {"ok": True, "pid": os.getpid(), "home": self.home, "running": running,
                        "generation": generation(self.home), "home_node": home_node(self.home)}
            if op == "load":
                block = self.load_block(request.get("name"), request.get("version"), request.get("config"))
                return {"ok": True, "block": block}
            if op == "run":
                return self.run_topology(request.get("topology"))
            if op == "shutdown":
                errors = self.shutdown()
                return {"ok": not errors, "errors": errors} if errors else {"ok": True}
            if op == "prepare":
                answer = {"ok": True}
                answer.update(self.prepare_part(request))
                return answer
            if op == "start":
                self._part(request).start(request.get("peers"))
                return {"ok": True}
            if op == "wait":
                return self._part(request).wait(min(seconds(request, "timeout", 1.0), 30.0))
            if op == "abort":
                known = self.abort_part(request.get("run"), request.get("node"),
                                        request.get("reason") or "aborted by the master")
                return {"ok": True, "known": known}
            return {"ok": False, "error": "unknown op {!r} (known: ping, load, run, prepare, start, wait, abort, "
                                          "shutdown)".format(op)}
        except CaretakerError as error:
            return {"ok": False, "error": str(error)}
        except Exception as error:
            LOG.exception("request `%s` failed", op)
            return {"ok": False, "error": "`{}` failed: {}: {}".format(op, type(error).__name__, error)}


def log_request(peer, request, answer):
    """One line per request: the peer, the op, the run (`wait` only once it answers the end of
    the part: the master polls it), and why it failed."""
    if not isinstance(request, dict):
        LOG.warning("%s: a request that is not a JSON object: %s", peer, answer.get("error"))
        return
    if request.get("op") == "wait" and answer.get("state") in ("prepared", "running"):
        return
    text = "{}: {}".format(peer, shown(request.get("op")))
    if "run" in request:
        text += " run {}".format(shown(request.get("run")))
    if "node" in request:
        text += " node {}".format(shown(request.get("node")))
    if answer.get("ok"):
        LOG.info("%s", text)
    else:
        LOG.warning("%s: failed: %s", text, answer.get("error"))


class _RequestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        peer = transport.address_text(*self.client_address[:2])
        try:
            if self.server.caretaker.tls is not None:
                self.request = self.server.caretaker.tls.server(self.request)
            session = auth.server_handshake(self.request, self.server.key, "control")
        except auth.AuthError as error:
            LOG.warning("refused a connection from %s: %s", peer, error)
            self.request.close()
            return
        self.request.settimeout(self.server.client_timeout)
        reader = self.request.makefile("rb")
        # The parts of runs prepared on this connection: when the master's connection ends,
        # they are aborted and forgotten (a master that died leaves nothing running).
        prepared = []
        try:
            while True:
                raw = reader.readline(MAX_LINE + 1)
                if not raw.endswith(b"\n"):
                    if len(raw) > MAX_LINE:
                        LOG.warning("closed the connection from %s: a line over %d bytes", peer, MAX_LINE)
                        self._answer(session, {"ok": False, "error": "a request line is limited to {} bytes; "
                                                                    "closing the connection".format(MAX_LINE)})
                    return
                try:
                    payload = session.open_line(raw)
                except auth.AuthError as error:
                    LOG.warning("closed the connection from %s: %s", peer, error)
                    return
                request = None
                try:
                    request = json.loads(payload.decode("utf-8"))
                except ValueError as error:
                    answer = {"ok": False, "error": "invalid JSON: {}".format(error)}
                else:
                    answer = self.server.caretaker.handle(request)
                log_request(peer, request, answer)
                if isinstance(request, dict) and request.get("op") == "prepare" and answer.get("ok"):
                    prepared.append((request["run"], request["node"]))
                    # The master may wait for its other nodes' deploys before it speaks again.
                    self.request.settimeout(max(self.server.client_timeout, request.get("timeout", 600)))
                self._answer(session, answer)
                if isinstance(request, dict) and request.get("op") == "shutdown":
                    self.server.stop_requested = True
                    return
        except (socket.timeout, OSError):
            return
        finally:
            reader.close()
            self.request.close()
            for run_id, node in prepared:
                self.server.caretaker.abort_part(run_id, node, "the master's connection closed")

    def _answer(self, session, answer):
        self.request.sendall(session.seal_line(json.dumps(answer, sort_keys=True).encode("utf-8")))


class CaretakerServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Serves its clients, each in a thread, on 127.0.0.1 unless `host` says otherwise; each
    client first proves it holds the cluster key (the caretaker's `key`)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, caretaker, port=0, client_timeout=30.0, host="127.0.0.1"):
        if caretaker.key is None:
            raise ValueError("a caretaker serves only with a cluster key")
        self.address_family = transport.address_family(host)
        socketserver.TCPServer.__init__(self, (host, port), _RequestHandler)
        self.key = caretaker.key
        self.caretaker = caretaker
        self.client_timeout = client_timeout
        self.stop_requested = False
        self.active = 0
        self._active_lock = threading.Lock()
        # handle_request() returns after this many seconds without a client, so the loop in
        # serve_until_stopped can check the stop flag and the idle deadline.
        self.timeout = 0.2

    @property
    def port(self):
        return self.server_address[1]

    def serve_until_stopped(self, idle_timeout=None):
        """Serve until a shutdown request, or until `idle_timeout` seconds pass with no request."""
        last_activity = time.time()
        try:
            while not self.stop_requested:
                if self._handle_one() or self.active:
                    last_activity = time.time()
                elif idle_timeout is not None and time.time() - last_activity > idle_timeout:
                    break
        finally:
            self.server_close()
            if not self.stop_requested:
                self.caretaker.shutdown()

    def _handle_one(self):
        self._handled = False
        self.handle_request()
        return self._handled

    def process_request(self, request, client_address):
        self._handled = True
        socketserver.ThreadingMixIn.process_request(self, request, client_address)

    def process_request_thread(self, request, client_address):
        with self._active_lock:
            self.active += 1
        try:
            socketserver.ThreadingMixIn.process_request_thread(self, request, client_address)
        finally:
            with self._active_lock:
                self.active -= 1


def pid_file(home):
    return os.path.join(home, "log", "caretaker.pid")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m datablox_framework.caretaker",
                                     description="Serve the Datablox caretaker of one node on 127.0.0.1.")
    parser.add_argument("--home", required=True, help="the node's deployment home")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on, for requests and for data from other nodes (default "
                             "127.0.0.1)")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the cluster key (default: <home>/config/cluster.key; mode 0600, owned by this user)")
    parser.add_argument("--tls-cert", metavar="PEM", help="with --tls-key and --tls-ca: TLS on every connection, "
                                                          "with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--tls-ca", metavar="PEM", help="the CA that signed the peers' certificates")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="stop after this many seconds without a request (default: never)")
    options = parser.parse_args(argv)

    home = os.path.abspath(options.home)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    try:
        key = auth.read_key(options.key_file or auth.key_path(home))
        tls = auth.tls_from_options(options.tls_cert, options.tls_key, options.tls_ca)
    except auth.KeyFileError as error:
        sys.stderr.write("error: {}\n".format(error))
        return 1
    caretaker = Caretaker(home, data_host=options.host, key=key, tls=tls)
    try:
        server = CaretakerServer(caretaker, options.port, host=options.host)
    except OSError as error:
        sys.stderr.write("error: cannot listen on {}:{}: {}\n".format(options.host, options.port, error))
        return 1
    pid_path = pid_file(home)
    if not os.path.isdir(os.path.dirname(pid_path)):
        os.makedirs(os.path.dirname(pid_path))
    with open(pid_path, "w") as handle:
        handle.write("{}\n".format(os.getpid()))
    # The port line lets a parent that asked for port 0 learn the port that was chosen.
    sys.stdout.write("caretaker listening on {}:{}\n".format(options.host, server.port))
    sys.stdout.flush()
    try:
        server.serve_until_stopped(options.idle_timeout)
    except KeyboardInterrupt:
        pass
    finally:
        if os.path.exists(pid_path):
            os.remove(pid_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
