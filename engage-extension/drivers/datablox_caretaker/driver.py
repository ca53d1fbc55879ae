"""Engage driver of the Datablox caretaker, the service that runs blocks on a node.

The caretaker is `python3 -m datablox_framework.caretaker --home <genforma_home> --port <port>`,
run with PYTHONPATH=<genforma_home>/python (where the framework and the adapter are installed).
Its package is a DummyPackage: installing only creates the node's `python/` and `log/` directories.
Ports: input `host.genforma_home`, config `port` (the TCP port the caretaker listens on).
The pid is kept in `<home>/log/caretaker.pid` (what `get_pid_file_path()` tells Engage's process
monitor), its output goes to `<home>/log/caretaker.log`. The caretaker serves only peers holding
the cluster key, `<home>/config/cluster.key`: `start` makes one (32 random bytes as hex, mode
0600) when the home has none, as the node deployer does; give every node the same key.

The build copies this directory into `drivers/datablox_caretaker__1_0/` and adds `resources.json`
and `packages.json`. Valid Python 2.7 (Engage loads drivers with it) and Python 3.
"""
import binascii
import errno
import os
import signal
import socket
import subprocess
import time

import engage.drivers.service_manager as service_manager
import engage.drivers.utils
from engage.drivers.action import Context, check_installable_to_dir, ensure_dir_exists
from engage.utils.log_setup import setup_engage_logger
from engage.utils.user_error import EngageErrInf, UserError
# One PATH lookup for the extension: the driver that checks the system python3 owns it.
from engage.drivers.datablox.system_python_driver import which

try:
    text_type = unicode  # noqa: F821 (Python 2: JSON strings are unicode)
except NameError:
    text_type = str

logger = setup_engage_logger(__name__)

PYTHON = "python3"
CARETAKER_MODULE = "datablox_framework.caretaker"
# How long the caretaker may take to listen on its port, and to exit once asked to.
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0

ERR_NO_PYTHON = 1
ERR_BAD_PORT = 2
ERR_NO_FRAMEWORK = 3
ERR_START_FAILED = 4
ERR_STOP_FAILED = 5
ERR_NOT_INSTALLED = 6

errors = {
    ERR_NO_PYTHON: EngageErrInf(
        __name__, ERR_NO_PYTHON,
        "resource %(id)s: `%(python)s` is not on PATH; the caretaker needs Python 3"),
    ERR_BAD_PORT: EngageErrInf(
        __name__, ERR_BAD_PORT,
        "resource %(id)s: config port `port` is %(port)r, expected a TCP port number (1-65535)"),
    ERR_NO_FRAMEWORK: EngageErrInf(
        __name__, ERR_NO_FRAMEWORK,
        "resource %(id)s: the Datablox framework is not installed in %(python_dir)s "
        "(no %(module)s); deploy datablox-framework on this node first"),
    ERR_START_FAILED: EngageErrInf(
        __name__, ERR_START_FAILED,
        "resource %(id)s: the caretaker did not start: %(why)s; see %(log)s:\n%(log_tail)s"),
    ERR_STOP_FAILED: EngageErrInf(
        __name__, ERR_STOP_FAILED,
        "resource %(id)s: the caretaker (pid %(pid)s) did not exit after SIGTERM and SIGKILL"),
    ERR_NOT_INSTALLED: EngageErrInf(
        __name__, ERR_NOT_INSTALLED, "resource %(id)s: directory %(path)s is missing after install"),
}


def make_cluster_key(path):
    """Write a new cluster key to `path` (mode 0600, never overwriting) unless one is there."""
    if os.path.lexists(path):
        return
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(binascii.hexlify(os.urandom(32)).decode("ascii") + "\n")


def get_packages_filename():
    return engage.drivers.utils.get_packages_filename(__file__)


def port_number(value):
    """The port as an int, or None if it is not a valid TCP port (JSON may give an int or a string)."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or not 0 < port < 65536:
        return None
    return port


def log_tail(path, lines=20):
    try:
        with open(path) as log_file:
            return "".join(log_file.readlines()[-lines:]).rstrip() or "(empty)"
    except (IOError, OSError):
        return "(no log)"


def read_pid(pid_file):
    try:
        with open(pid_file) as handle:
            return int(handle.read().strip())
    except (IOError, OSError, ValueError):
        return None


# Caretakers started by this process, by pid. Keeping the Popen object alive means an exited
# caretaker is reaped through it (a zombie still answers kill(pid, 0)), and Python does not warn
# about a running child being garbage-collected while the driver is still in use.
_started = {}


def process_alive(pid):
    """True if `pid` is a live caretaker process (not a zombie, not a reused pid)."""
    if pid in _started and _started[pid].poll() is not None:
        del _started[pid]
        return False
    try:
        os.kill(pid, 0)
    except OSError as error:
        if error.errno == errno.ESRCH:
            return False
        # EPERM: the process exists but belongs to someone else, so it is not our caretaker.
        return False
    cmdline_file = "/proc/%d/cmdline" % pid
    if os.path.exists(cmdline_file):
        # A stale pid file may name a pid the system has since given to another program.
        try:
            with open(cmdline_file, "rb") as handle:
                return CARETAKER_MODULE.encode("ascii") in handle.read()
        except (IOError, OSError):
            return False
    return True


def port_accepts(port, timeout=0.5):
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(("127.0.0.1", port))
        return True
    except (socket.error, socket.timeout):
        return False
    finally:
        connection.close()


def write_pid_file(pid_file, pid):
    # Written under a temporary name, then renamed, so a reader never sees a half-written pid.
    partial = pid_file + ".partial"
    with open(partial, "w") as handle:
        handle.write("%d\n" % pid)
    os.rename(partial, pid_file)


def remove_file(path):
    try:
        os.remove(path)
    except OSError as error:
        if error.errno != errno.ENOENT:
            raise


def make_context(resource_json, dry_run=False):
    ctx = Context(resource_json, logger, __file__, dry_run=dry_run)
    ctx.check_port("input_ports.host", genforma_home=text_type)
    return ctx


class Manager(service_manager.Manager):
    REQUIRES_ROOT_ACCESS = False

    def __init__(self, metadata, dry_run=False):
        package_name = "%s %s" % (metadata.key["name"], metadata.key["version"])
        service_manager.Manager.__init__(self, metadata, package_name)
        self.ctx = make_context(metadata.to_json(), dry_run=dry_run)
        self.home = self.ctx.props.input_ports.host.genforma_home
        self.python_dir = os.path.join(self.home, "python")
        self.log_dir = os.path.join(self.home, "log")
        self.pid_file = os.path.join(self.log_dir, "caretaker.pid")
        self.log_file = os.path.join(self.log_dir, "caretaker.log")
        # Checked when used, not here, so that a bad port is reported as a UserError by validate_pre_install.
        config = getattr(self.ctx.props, "config_port", None)
        self.port_value = getattr(config, "port", None) if config is not None else None

    def get_pid_file_path(self):
        """The caretaker's pid file, so that Engage's process monitor can watch it
        (`engage/drivers/service_manager.py` returns None unless a service overrides this)."""
        return self.pid_file

    def _port(self):
        port = port_number(self.port_value)
        if port is None:
            raise UserError(errors[ERR_BAD_PORT], msg_args={"id": self.id, "port": self.port_value})
        return port

    def _python(self):
        python = which(PYTHON)
        if python is None:
            raise UserError(errors[ERR_NO_PYTHON], msg_args={"id": self.id, "python": PYTHON})
        return python

    def validate_pre_install(self):
        self._python()
        self._port()
        # The home exists (Engage made it), and Engage's check_installable_to_dir refuses a
        # directory that exists: check only the directories this driver will create.
        if not self.is_installed():
            for path in (self.python_dir, self.log_dir):
                if not os.path.isdir(path):
                    self.ctx.r(check_installable_to_dir, path)

    def is_installed(self):
        return os.path.isdir(self.python_dir) and os.path.isdir(self.log_dir)

    def install(self, package):
        # DummyPackage: nothing to unpack; the framework and adapter are their own resources.
        self.ctx.r(ensure_dir_exists, self.python_dir)
        self.ctx.r(ensure_dir_exists, self.log_dir)

    def validate_post_install(self):
        for path in (self.python_dir, self.log_dir):
            if not self.ctx.dry_run and not os.path.isdir(path):
                raise UserError(errors[ERR_NOT_INSTALLED], msg_args={"id": self.id, "path": path})

    def _start_failed(self, why):
        return UserError(errors[ERR_START_FAILED],
                         msg_args={"id": self.id, "why": why, "log": self.log_file,
                                   "log_tail": log_tail(self.log_file)})

    def start(self):
        python = self._python()
        port = self._port()
        framework = os.path.join(self.python_dir, "datablox_framework")
        if not os.path.isdir(framework):
            raise UserError(errors[ERR_NO_FRAMEWORK],
                            msg_args={"id": self.id, "python_dir": self.python_dir, "module": framework})
        if self.is_running():
            logger.info("caretaker %s is already running" % self.id)
            return
        if not os.path.isdir(self.log_dir):
            os.makedirs(self.log_dir)
        remove_file(self.pid_file)
        make_cluster_key(os.path.join(self.home, "config", "cluster.key"))
        env = dict(os.environ)
        env["PYTHONPATH"] = self.python_dir
        command = [python, "-m", CARETAKER_MODULE, "--home", self.home, "--port", str(port)]
        logger.info("starting caretaker: %s" % " ".join(command))
        log_handle = open(self.log_file, "a")
        devnull = open(os.devnull, "r")
        try:
            # A session of its own: the caretaker outlives Engage's command, and stop() can end
            # the caretaker together with the block processes it started.
            process = subprocess.Popen(command, stdin=devnull, stdout=log_handle,
                                       stderr=subprocess.STDOUT, cwd=self.home, env=env,
                                       close_fds=True, preexec_fn=os.setsid)
        finally:
            log_handle.close()
            devnull.close()
        _started[process.pid] = process
        write_pid_file(self.pid_file, process.pid)
        deadline = time.time() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                _started.pop(process.pid, None)
                remove_file(self.pid_file)
                raise self._start_failed("it exited with code %s" % process.returncode)
            if port_accepts(port):
                logger.info("caretaker %s runs as pid %d on port %d" % (self.id, process.pid, port))
                return
            if time.time() > deadline:
                self.stop()
                raise self._start_failed("it did not listen on port %d within %d seconds"
                                         % (port, START_TIMEOUT_SECONDS))
            time.sleep(0.1)

    def is_running(self):
        pid = read_pid(self.pid_file)
        return pid is not None and process_alive(pid)

    def _signal(self, pid, signal_number):
        try:
            os.killpg(pid, signal_number)
        except OSError:
            # Not a group leader (started by something else): signal the process alone.
            try:
                os.kill(pid, signal_number)
            except OSError:
                pass

    def _wait_exit(self, pid, seconds):
        deadline = time.time() + seconds
        while process_alive(pid):
            if time.time() > deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self):
        pid = read_pid(self.pid_file)
        if pid is None or not process_alive(pid):
            remove_file(self.pid_file)
            return
        logger.info("stopping caretaker %s (pid %d)" % (self.id, pid))
        self._signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, STOP_TIMEOUT_SECONDS):
            self._signal(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 5.0):
                raise UserError(errors[ERR_STOP_FAILED], msg_args={"id": self.id, "pid": pid})
        remove_file(self.pid_file)
