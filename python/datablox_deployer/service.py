"""Services of a home (the caretaker): `start`, `stop` and `status`, as Engage's svcctl does them
through a service driver. A service runs detached, with PYTHONPATH=<home>/python, its output in
`<home>/log/<name>.log` and its pid in `<home>/log/<name>.pid`.

The pid file is a claim, not a fact: a pid names another process once the service is gone (and
the pid file stays a plain pid, which the caretaker itself and Engage's monitor write and read).
So `start` also records, in `<home>/log/<name>.started.json`, the process's command line and its
start time (field 22 of `/proc/PID/stat`, in clock ticks since boot), and the pid is taken for
the service only while `/proc/PID` shows both unchanged (`running_pid`): a stranger with that pid
is reported as not running, never signalled.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

from . import DeployError
from .home import write_atomically

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# The caretaker's line once it listens: `caretaker listening on HOST:PORT` (HOST may be IPv6).
LISTENING = re.compile(r"listening on (\S+):(\d+)")
DEFAULT_LISTEN = "127.0.0.1"


def caretaker_command(home, instance, port, listen, key_file=None, tls=None):
    """`tls`: (cert, key, ca) files, or None."""
    # `--flag=value`: a value (an address from --listen) is never read as an option.
    return [sys.executable, "-m", "datablox_framework.caretaker", "--home=" + home.root, "--port={}".format(port),
            "--host=" + listen] + (["--key-file=" + key_file] if key_file else []) + (
        ["--tls-cert=" + tls[0], "--tls-key=" + tls[1], "--tls-ca=" + tls[2]] if tls else [])


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


def process_identity(pid):
    """(start time, command line) of a live process from /proc, or None when there is none (or
    it is a zombie)."""
    try:
        with open("/proc/{}/stat".format(pid), "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/{}/cmdline".format(pid), "rb") as handle:
            command = handle.read().split(b"\0")[:-1]
    except (OSError, IndexError):
        return None
    # After the command's `)`: field 3 (the state) is the first, field 22 (the start time) the 20th.
    if fields[0] == b"Z" or len(fields) < 20:
        return None
    return int(fields[19]), [part.decode("utf-8", "surrogateescape") for part in command]


def identity_file(home, stem):
    return home.path("log", stem + ".started.json")


def running_pid(home, stem):
    """The service's pid when the pid file names a live process that `start` started for this
    home (`is_ours`), else None."""
    pid = read_pid(home.path("log", stem + ".pid"))
    return pid if pid is not None and is_ours(home, stem, pid) else None


def is_ours(home, stem, pid):
    """Whether `pid` is the live process `start` recorded: the same start time and command line."""
    try:
        with open(identity_file(home, stem), "rb") as handle:
            recorded = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or recorded.get("pid") != pid:
        return False
    found = process_identity(pid)
    return found is not None and [found[0], found[1]] == [recorded.get("start_time"), recorded.get("command")]


def status(home, name=None):
    instance, stem, _ = find_service(home, name)
    pid = running_pid(home, stem)
    running = pid is not None
    port = listen = None
    log = home.path("log", stem + ".log")
    if running and os.path.exists(log):
        with open(log, errors="replace") as handle:
            found = LISTENING.findall(handle.read())
        if found:
            listen, port = found[-1][0].strip("[]"), int(found[-1][1])
    # Each run of the caretaker uses what is installed when it starts (a worker process per
    # run), so this generation is the one its next run uses.
    return {"service": instance["id"], "key": instance["key"], "running": running, "pid": pid,
            "port": port, "listen": listen, "log": log, "generation": home.generation(),
            "node": home.settings().get("node")}


def start(home, name=None, port=None, listen=None, remember_address=True, key_file=None, tls=None):
    """Start the service unless it runs (then `changed: false`); `listen` is the address it
    listens on (default 127.0.0.1). Without `port` and `listen`, those of the last start (recorded
    in the home unless `remember_address` is false), else the service's config port. `key_file`:
    the cluster key it reads instead of the home's; `tls`: (cert, key, CA) files."""
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
    home.check()
    # What the last start used is remembered in the home, so that `stop` then `start` keeps the
    # caretaker on its port and address.
    remembered = home.settings().get("services", {}).get(stem, {})
    if port is None:
        port = remembered.get("port", instance.get("config_port", {}).get("port", 0))
    if listen is None:
        listen = remembered.get("listen")
    log_path = home.path("log", stem + ".log")
    pid_path = home.path("log", stem + ".pid")
    env = dict(os.environ, PYTHONPATH=home.path("python"), DATABLOX_HOME=home.root)
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    command = command_for(home, instance, port, listen or DEFAULT_LISTEN, key_file, tls)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(command, stdin=devnull, stdout=log, stderr=log,
                                   env=env, cwd=home.root, start_new_session=True)
    # The start time is the fork's, which exec keeps. The command line is the one passed, not
    # read back: Popen may return before the kernel has set up the new one in /proc.
    found = process_identity(process.pid)
    if found is not None:
        write_atomically(identity_file(home, stem), (json.dumps(
            {"pid": process.pid, "start_time": found[0], "command": command}, sort_keys=True) + "\n").encode("utf-8"))
    write_atomically(pid_path, "{}\n".format(process.pid).encode("utf-8"))
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if process.poll() is not None:
            raise DeployError("service `{}` exited with code {} at start; see {}:\n{}".format(
                instance["id"], process.returncode, log_path, tail(log_path, offset)))
        with open(log_path, errors="replace") as handle:
            handle.seek(offset)
            match = LISTENING.search(handle.read())
        if match:
            started = {"port": int(match.group(2)), "listen": match.group(1).strip("[]")}
            if remember_address:
                remember(home, stem, started)
            return dict(started, service=instance["id"], key=instance["key"], running=True, pid=process.pid,
                        log=log_path, changed=True, generation=home.generation())
        time.sleep(0.05)
    process.kill()
    raise DeployError("service `{}` did not listen within {:.0f} s; see {}".format(instance["id"], START_TIMEOUT, log_path))


def remember(home, stem, started):
    """Records the port and address a service listens on in `<home>/config/deployer.json`."""
    settings = home.settings()
    if settings.get("services", {}).get(stem) != started:
        settings.setdefault("services", {})[stem] = started
        home.save_settings(settings)


def stop(home, name=None):
    """Stop the service: SIGTERM, then SIGKILL after STOP_TIMEOUT, each sent only while the pid is
    still the process `start` recorded (`running_pid`)."""
    instance, stem, _ = find_service(home, name)
    home.check()
    pid_path = home.path("log", stem + ".pid")
    pid = running_pid(home, stem)
    if pid is None:
        for path in (pid_path, identity_file(home, stem)):
            if os.path.lexists(path):
                os.remove(path)
        return {"service": instance["id"], "running": False, "changed": False}
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + STOP_TIMEOUT
    while time.time() < deadline and _still_ours(home, stem, pid):
        time.sleep(0.05)
    if _still_ours(home, stem, pid):
        os.kill(pid, signal.SIGKILL)
    for path in (pid_path, identity_file(home, stem)):
        if os.path.lexists(path):
            os.remove(path)
    return {"service": instance["id"], "running": False, "changed": True}


def _still_ours(home, stem, pid):
    """Whether the stopped service still runs: reaped if it is our child, else `is_ours` (the
    caretaker removes its pid file as it exits, so the pid file is not read again)."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    return is_ours(home, stem, pid)


def tail(path, offset=0, lines=20):
    try:
        with open(path, errors="replace") as handle:
            handle.seek(offset)
            return "\n".join(handle.read().splitlines()[-lines:])
    except OSError:
        return ""


def to_text(result):
    return json.dumps(result, sort_keys=True)
