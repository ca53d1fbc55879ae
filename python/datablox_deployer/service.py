"""Services of a home (the caretaker): `start`, `stop` and `status`, as Engage's svcctl does them
through a service driver. A service runs detached, with PYTHONPATH=<home>/python, its output in
`<home>/log/<name>.log` and its pid in `<home>/log/<name>.pid`.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

from . import DeployError
from .home import pid_alive

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# The caretaker's line once it listens: `caretaker listening on HOST:PORT` (HOST may be IPv6).
LISTENING = re.compile(r"listening on (\S+):(\d+)")
DEFAULT_LISTEN = "127.0.0.1"


def caretaker_command(home, instance, port, listen):
    return [sys.executable, "-m", "datablox_framework.caretaker", "--home", home.root, "--port", str(port),
            "--host", listen]


# Service resources by key name: (file stem in log/, command builder).
SERVICES = {"datablox-caretaker": ("caretaker", caretaker_command)}


def find_service(home, name=None):
    """(instance, stem, command builder) of the installed service `name` (id or key name), or the
    only installed service when `name` is None."""
    found = []
    for instance in home.installed():
        key_name = instance.get("key", {}).get("name")
        if key_name in SERVICES and (name is None or name in (key_name, instance.get("id"))):
            found.append((instance,) + SERVICES[key_name])
    if not found:
        raise DeployError("no service {}is installed in {} (help: deploy it first: `deploy --home {}`)".format(
            "`{}` ".format(name) if name else "", home.root, home.root))
    return found[0]


def read_pid(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def status(home, name=None):
    instance, stem, _ = find_service(home, name)
    pid = read_pid(home.path("log", stem + ".pid"))
    running = pid is not None and pid_alive(pid)
    port = listen = None
    log = home.path("log", stem + ".log")
    if running and os.path.exists(log):
        with open(log, errors="replace") as handle:
            found = LISTENING.findall(handle.read())
        if found:
            listen, port = found[-1][0].strip("[]"), int(found[-1][1])
    return {"service": instance["id"], "key": instance["key"], "running": running, "pid": pid if running else None,
            "port": port, "listen": listen, "log": log}


def start(home, name=None, port=None, listen=None):
    """Start the service unless it runs (then `changed: false`); `listen` is the address it
    listens on (default 127.0.0.1)."""
    instance, stem, command_for = find_service(home, name)
    current = status(home, name)
    if current["running"]:
        # Already running: nothing to do (`changed: false`, which Ansible's changed_when reads),
        # unless it listens on another port than the one asked for.
        if port and current["port"] is not None and current["port"] != port:
            raise DeployError("service `{}` is running on port {}, not {} (help: stop it first: `deploy --home {} "
                              "stop`)".format(instance["id"], current["port"], port, home.root))
        if listen and current["listen"] is not None and current["listen"] != listen:
            raise DeployError("service `{}` is listening on {}, not {} (help: stop it first: `deploy --home {} "
                              "stop`)".format(instance["id"], current["listen"], listen, home.root))
        return dict(current, changed=False)
    if port is None:
        port = instance.get("config_port", {}).get("port", 0)
    log_path = home.path("log", stem + ".log")
    pid_path = home.path("log", stem + ".pid")
    env = dict(os.environ, PYTHONPATH=home.path("python"), DATABLOX_HOME=home.root)
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(command_for(home, instance, port, listen or DEFAULT_LISTEN), stdin=devnull, stdout=log, stderr=log,
                                   env=env, cwd=home.root, start_new_session=True)
    with open(pid_path + ".tmp", "w") as handle:
        handle.write("{}\n".format(process.pid))
    os.replace(pid_path + ".tmp", pid_path)
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if process.poll() is not None:
            raise DeployError("service `{}` exited with code {} at start; see {}:\n{}".format(
                instance["id"], process.returncode, log_path, tail(log_path, offset)))
        with open(log_path, errors="replace") as handle:
            handle.seek(offset)
            match = LISTENING.search(handle.read())
        if match:
            return {"service": instance["id"], "key": instance["key"], "running": True, "pid": process.pid,
                    "port": int(match.group(2)), "listen": match.group(1).strip("[]"), "log": log_path,
                    "changed": True}
        time.sleep(0.05)
    process.kill()
    raise DeployError("service `{}` did not listen within {:.0f} s; see {}".format(instance["id"], START_TIMEOUT, log_path))


def stop(home, name=None):
    instance, stem, _ = find_service(home, name)
    pid_path = home.path("log", stem + ".pid")
    pid = read_pid(pid_path)
    if pid is None or not pid_alive(pid):
        if os.path.exists(pid_path):
            os.remove(pid_path)
        return {"service": instance["id"], "running": False, "changed": False}
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + STOP_TIMEOUT
    while time.time() < deadline and _alive_child_aware(pid):
        time.sleep(0.05)
    if _alive_child_aware(pid):
        os.kill(pid, signal.SIGKILL)
    if os.path.exists(pid_path):
        os.remove(pid_path)
    return {"service": instance["id"], "running": False, "changed": True}


def _alive_child_aware(pid):
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    return pid_alive(pid)


def tail(path, offset=0, lines=20):
    try:
        with open(path, errors="replace") as handle:
            handle.seek(offset)
            return "\n".join(handle.read().splitlines()[-lines:])
    except OSError:
        return ""


def to_text(result):
    return json.dumps(result, sort_keys=True)
