"""Steps 3-5 of ci/engage-real.sh, run inside its private mount namespace: installs the extension
with Engage's install_extension.py, bootstraps a deployment home with bootstrap.py, deploys each
spec with Engage's deployer into a fresh copy of that home, then the node scenario, and prints the
report (see ci/engage-real.sh for what each check means).

Usage: deploy.py RUN_DIR ENGAGE_SRC DIST BASE_PYTHON [NAME...]
  RUN_DIR holds engage/ (a copy of Engage's sources with the built config engine and the package
  cache); home/ and logs/ are made there. NAMEs limit the checks (--only). Exit status 0 when
  every check succeeded, 1 when one failed. Python 3, standard library only.
"""
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The deployer's output lines that say ERROR or show the exception.
ERROR_LINE = re.compile(rb"^(ERROR|CRITICAL)|\[ERROR\]|Error:|Exception:")


def log(message):
    sys.stderr.write("==> %s\n" % message)
    sys.stderr.flush()


def run(argv, out_path, cwd, stdin_path=None):
    """Runs argv from cwd with stdout and stderr into out_path; returns the exit status."""
    with open(out_path, "wb") as out:
        stdin = open(stdin_path, "rb") if stdin_path else None
        try:
            return subprocess.call(argv, cwd=cwd, stdin=stdin, stdout=out, stderr=subprocess.STDOUT)
        except OSError as error:  # as the shell reports a command it cannot run
            out.write(("%s: %s\n" % (argv[0], error)).encode())
            return 127
        finally:
            if stdin:
                stdin.close()


def read_lines(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace").splitlines()


def block_names(drivers):
    """(name, version) of each block of the extension: a resource that the framework's BLOXPATH
    feeds (its environment names datablox-framework); the caretaker has its own spec."""
    blocks = []
    for d in sorted(os.listdir(drivers)):
        rj = os.path.join(drivers, d, "resources.json")
        if not os.path.isfile(rj):
            continue
        with open(rj) as f:
            defs = json.load(f)
        defs = defs.get("resource_definitions", defs) if isinstance(defs, dict) else defs
        for r in defs:
            name = r["key"]["name"]
            env = json.dumps(r.get("environment", {}))
            if name != "datablox-caretaker" and "datablox-framework" in env:
                blocks.append((name, r["key"]["version"]))
    return blocks


def write_block_spec(name, version, out):
    """The install spec for a block: the host and the block, naming only its key."""
    host = {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}}
    block = {"id": name, "key": {"name": name, "version": version},
             "inside": {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}}}
    with open(out, "w") as f:
        json.dump([host, block], f, indent=2)


def monitor_notes(deployer_log):
    """With --mgt-backends print, Engage registers every installed service with its management
    backends (engine/mgt_registration.py register_with_mgt_backends), asking each service's driver
    for get_pid_file_path(); the `print` backend prints what a process monitor gets."""
    with open(deployer_log) as f:
        text = f.read()
    decoder = json.JSONDecoder()
    at = text.find('{\n  "services"')
    notes = []
    while at >= 0:
        info, end = decoder.raw_decode(text[at:])
        for svc in info.get("services", []):
            if not svc.get("pidfile"):
                notes.append("; service %s gives Engage's process monitor no pid file (get_pid_file_path() is None)"
                             % svc.get("resource_id"))
        at = text.find('{\n  "services"', at + end)
    return "".join(notes)


def report_failure(home, out):
    """Prints Engage's own words for a failed deployment (config/config_error.json,
    log/user_error.json, the last ERROR lines of the deployer's output) and returns the reason
    the summary line gives: the config engine's error before the deployer's developer message."""
    reasons = []
    for rel in ("config/config_error.json", "log/user_error.json"):
        path = os.path.join(home, rel)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            text = f.read()
        try:
            err = json.loads(text)
        except ValueError:
            # The config engine writes \' inside JSON strings, which JSON does not allow.
            try:
                err = json.loads(text.replace("\\'", "'"))
            except ValueError:
                err = {"usererror": text.strip()}
        print("    %s:" % rel)
        for k in ("usererror", "deverror"):
            v = err.get(k)
            if v:
                v = " ".join(str(v).split())
                print("      %s: %s" % (k, v[:600]))
                reasons.append(v)
    reasons.sort(key=lambda r: "install script" in r)
    print("    deployer log (%s), last ERROR lines:" % os.path.basename(out))
    with open(out, "rb") as f:
        lines = [line for line in f.read().split(b"\n") if ERROR_LINE.search(line) and not line.startswith(b"  File ")]
    for line in lines[-4:]:
        print("      " + line[:400].decode("utf-8", "replace"))
    return (reasons[0] if reasons else "no error file; see the deployer log")[:200]


def kill_under(home):
    """Kills every process whose command line names a path under home; returns their pids."""
    found = subprocess.run(["pgrep", "-f", "--", home + "/"], stdout=subprocess.PIPE,
                           universal_newlines=True).stdout.split()
    for pid in found:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    return found


class Deployment:
    def __init__(self, run_dir, dist, base_python, only):
        self.run_dir, self.dist, self.base_python, self.only = run_dir, dist, base_python, only
        self.engage = os.path.join(run_dir, "engage")
        self.home = os.path.join(run_dir, "home")
        self.logs = os.path.join(run_dir, "logs")
        self.results = []
        self.total = self.failed = 0

    def wanted(self, name):
        return not self.only or name in self.only

    def rel(self, path):
        return os.path.relpath(path, self.run_dir)

    def ok(self, line):
        self.total += 1
        self.results.append("OK      " + line)

    def fail(self, line):
        self.total += 1
        self.failed += 1
        self.results.append("FAILED  " + line)

    def fresh_home(self):
        """Every deployment starts from the bootstrapped home, restored at the same path
        (virtualenvs hold absolute paths)."""
        shutil.rmtree(self.home, ignore_errors=True)
        subprocess.check_call(["tar", "-xf", os.path.join(self.run_dir, "home.tar"), "-C", self.run_dir])

    def setup(self):
        os.makedirs(self.logs, exist_ok=True)
        datablox = os.path.join(self.dist, "datablox")
        out = os.path.join(self.logs, "install_extension.log")
        log("install_extension.py %s" % datablox)
        if run([self.base_python, "install_extension.py", datablox], out, self.engage) != 0:
            with open(out) as f:
                sys.stderr.write(f.read())
            print("install_extension FAILED")
            return False
        out = os.path.join(self.logs, "bootstrap.log")
        log("bootstrap.py --never-download %s (log: %s)" % (self.home, out))
        if run([self.base_python, "bootstrap.py", "--never-download", "-x", self.base_python, self.home],
               out, self.engage) != 0:
            sys.stderr.write("".join(line + "\n" for line in read_lines(out)[-30:]))
            print("bootstrap FAILED")
            return False
        subprocess.check_call(["tar", "-cf", os.path.join(self.run_dir, "home.tar"), "-C", self.run_dir, "home"])
        return True

    def installer_config(self):
        out = os.path.join(self.logs, "installer-config.log")
        python = os.path.join(self.home, "engage", "bin", "python")
        status = run([python, "-"], out, self.home, stdin_path=os.path.join(HERE, "read_installer_config.py"))
        lines = [line.replace(self.home + "/", "") for line in read_lines(out)]
        if status == 0:
            self.ok("installer-config: %s" % " ".join(lines))
        else:
            last = [line for line in lines if not line[:1].isspace()][-1:] or [""]
            self.fail("installer-config: %s" % last[0][:300])

    def deploy(self, name, spec):
        """Engage's deployer on one spec, in a fresh home; then svcctl stop."""
        self.fresh_home()
        out = os.path.join(self.logs, "deploy-%s.log" % name)
        log("deployer %s" % name)
        deployer = os.path.join(self.home, "engage", "bin", "deployer")
        drc = run([deployer, "-d", self.home, "-g", "--mgt-backends", "print", spec], out, self.home)
        installed = os.path.join(self.home, "config", "installed_resources.json")
        monitor_note = monitor_notes(out)
        # Services the deployment started (the caretaker) are stopped with Engage's own `svcctl
        # stop` (every resource, in reverse install order); a process still running under the home
        # afterwards is a failure of the driver's stop, and is killed so the next deployment starts clean.
        stop_note = ""
        if os.path.isfile(installed):
            stop_log = os.path.join(self.logs, "svcctl-stop-%s.log" % name)
            if run([os.path.join(self.home, "engage", "bin", "svcctl"), "-d", self.home, "stop"],
                   stop_log, self.home) != 0:
                stop_note = "; svcctl stop failed (log %s)" % self.rel(stop_log)
        leftover = kill_under(self.home)
        if leftover:
            stop_note += "; still running after svcctl stop: pid %s (killed)" % " ".join(leftover)
        stop_note += monitor_note
        if drc == 0 and os.path.isfile(installed) and not stop_note:
            with open(installed) as f:
                self.ok("%s: installed %s" % (name, ", ".join(r["id"] for r in json.load(f))))
        else:
            print("--- %s: FAILED (deployer exit %s, log %s)" % (name, drc, self.rel(out)))
            if drc == 0 and os.path.isfile(installed):
                print("    deployed, but%s" % stop_note[1:])
                self.fail("%s: deployed, but%s" % (name, stop_note[1:]))
            else:
                self.fail("%s: %s" % (name, report_failure(self.home, out)))
        try:
            shutil.copytree(os.path.join(self.home, "log"), os.path.join(self.logs, "home-log-%s" % name),
                            symlinks=True)
        except (OSError, shutil.Error):
            pass  # no log directory: nothing to keep

    def node(self, blocks):
        """What the caretaker does on a node. One home: Engage deploys the caretaker, then the
        caretaker's own code (datablox_engage_adapter.install_block, as installed in <home>/python)
        deploys each block on demand into that same home, additively."""
        self.fresh_home()
        out = os.path.join(self.logs, "node-caretaker.log")
        log("node: deployer caretaker, then the adapter deploys each block into the same home")
        deployer = os.path.join(self.home, "engage", "bin", "deployer")
        spec = os.path.join(self.dist, "datablox", "metadata", "caretaker_install_spec.json")
        drc = run([deployer, "-d", self.home, "-g", spec], out, self.home)
        if drc != 0:
            print("--- node: caretaker FAILED (deployer exit %s, log %s)" % (drc, self.rel(out)))
            self.fail("node: caretaker: %s" % report_failure(self.home, out))
        else:
            self.ok("node: caretaker")
            for name, version in blocks:
                out = os.path.join(self.logs, "node-%s.log" % name)
                status = run(["python3", "-", self.home, name, version], out, self.home,
                             stdin_path=os.path.join(HERE, "install_block.py"))
                lines = read_lines(out)
                if status == 0:
                    self.ok("node: %s: adapter install_block: %s" % (name, (lines or [""])[-1]))
                else:
                    print("--- node: %s FAILED (log %s)" % (name, self.rel(out)))
                    reason = report_failure(self.home, out)
                    first = ([line for line in lines if line.strip()] or [""])[0][:200]
                    self.fail("node: %s: %s / %s" % (name, first, reason))
            run([os.path.join(self.home, "engage", "bin", "svcctl"), "-d", self.home, "stop"],
                os.path.join(self.logs, "node-svcctl-stop.log"), self.home)
            installed = os.path.join(self.home, "config", "installed_resources.json")
            if os.path.isfile(installed):
                shutil.copy(installed, os.path.join(self.logs, "node-installed_resources.json"))
            # The node's record: config/installed_resources.json must list the caretaker and every block.
            try:
                with open(installed) as f:
                    keys = set(r["key"]["name"] for r in json.load(f))
                if "datablox-caretaker" in keys:
                    keys.add("caretaker")
                missing = " ".join(name for name in ["caretaker"] + [b[0] for b in blocks] if name not in keys)
            except (IOError, OSError, ValueError) as error:
                missing = "cannot read: %s" % error
            if not missing:
                self.ok("node: config/installed_resources.json records the caretaker and all %d blocks"
                        % len(blocks))
            else:
                self.fail("node: config/installed_resources.json lacks: %s" % missing)
        kill_under(self.home)

    def summary(self, engage_src):
        now = datetime.datetime.now(datetime.timezone.utc)
        print("\n=== engage-real summary (%s) ===" % now.strftime("%Y-%m-%dT%H:%MZ"))
        print("checked: config engine built from %s with 3 patches; bootstrap.py --never-download;" % engage_src)
        print("         install_extension.py %s/datablox; installer_config.json read by Engage's file layout;"
              % self.dist)
        print("         deployer -g on each spec (caretaker_install_spec.json; per block: its key only) into a fresh")
        print("         copy of the bootstrapped home; node: the caretaker deployed, then each block deployed into")
        print("         that home by the caretaker's own adapter (install_block), as on a node")
        print("         OK = deployer exit 0, config/installed_resources.json written (ids listed), and")
        print("              every service has a pid file for Engage's process monitor (--mgt-backends print),")
        print("              and svcctl stop stopped what it started (no process left under the home)")
        # Paths under the run directory would differ on every run: print them as HOME/...
        for line in self.results or [""]:
            print(re.sub(r" \(spec kept at [^)]*\)", "", line.replace(self.home, "HOME")).rstrip(" "))
        print("%d checks, %d OK, %d FAILED" % (self.total, self.total - self.failed, self.failed))


def main(argv):
    if len(argv) < 5:
        sys.stderr.write(__doc__)
        return 2
    run_dir, engage_src, dist, base_python = argv[1:5]
    sys.stdout.reconfigure(line_buffering=True)
    d = Deployment(run_dir, dist, base_python, set(argv[5:]))
    if not d.setup():
        return 1
    blocks = block_names(os.path.join(dist, "datablox", "drivers"))
    specs = [("caretaker", os.path.join(dist, "datablox", "metadata", "caretaker_install_spec.json"))]
    for name, version in blocks:
        spec = os.path.join(run_dir, "spec-%s.json" % name)
        write_block_spec(name, version, spec)
        specs.append((name, spec))
    if d.wanted("installer-config"):
        d.installer_config()
    for name, spec in specs:
        if d.wanted(name):
            d.deploy(name, spec)
    if d.wanted("node"):
        d.node(blocks)
    d.summary(engage_src)
    return 0 if d.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
