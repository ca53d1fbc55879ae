"""The command line, argparse subcommands: `deploy --home DIR [install] [RESOURCE...]`,
`deploy --home DIR start|stop|status [SERVICE]`, `deploy --home DIR run TOPOLOGY`, `deploy place ...`.

A command imports the modules it uses when it runs: an install (what a caretaker asks for on
demand) does not load those of `place`, `run` or the services."""

import argparse
import json
import os
import sys

from . import DeployError, safetar
from .extension import key_text
from .home import Home, NotAHome

DESCRIPTION = """\
Deploy resources of the Datablox extension into a deployment home, with Python 3 only.

With RESOURCEs (`word-count 1.0`, `word-count@1.0`, or `word-count` when one version is defined),
installs each and, first, everything it needs; with none, what the extension's
caretaker_install_spec.json installs (the caretaker, the framework and the adapter), or, in a
bundle `deploy place --bundle` wrote, that node's install spec (the caretaker and its blocks). What is
installed with the same archive digest is left alone; a changed archive is replaced.

  [install] [RESOURCE...]       the default command: install RESOURCEs, as above
  start|stop|status [SERVICE]   control a service of the home (the caretaker)
  run TOPOLOGY                  deploy what the home lacks, start its caretaker unless it runs,
                                run every block of TOPOLOGY on it (the master's per-block table),
                                stop the caretaker again; exit code: the master's

  deploy place --topology FILE --nodes A,B,... [--bundle DIR | --homes-dir DIR]
                                place a topology's blocks on nodes; per-node bundles or homes
                                (`deploy place --help`)
"""

EPILOG = """\
The home: engage/ (this extension, SHA256SUMS, bin/deployer), config/installed_resources.json,
config/cluster.key (the cluster key, mode 0600: made by the first deploy, or --key-file's),
python/ (PYTHONPATH), blox/ (BLOXPATH), log/ (deploy.log, services' pid files and logs).
A home and its directories must be real directories of the deploying user that group and others
cannot write (else refused, nothing written). `--` ends the options: what follows is a RESOURCE.
Exit codes: 0 done, 1 refused or failed (the home keeps whole resources only), 2 bad usage.
"""


COMMANDS = ("install", "start", "stop", "status", "run", "place")


def add_home_options(p):
    """The options of the commands on a home, taken before the command's name and after it."""
    p.add_argument("--home", help="the deployment home (created when missing)")
    p.add_argument("--tree", help="the extension tree to deploy from (default: the one this deployer is in)")
    p.add_argument("--release", metavar="ARCHIVE",
                   help="deploy from a release archive (datablox-extension-<version>.tar.gz), checked against the "
                        "SHA256SUMS beside it, instead of a tree")
    p.add_argument("--key", metavar="PUB",
                   help="with --release: the release's ed25519 public key (PEM); the archive must be a subject of "
                        "the statement it signed (.intoto.jsonl beside the archive; needs `openssl`)")
    p.add_argument("--spec", metavar="FILE", help="an install spec of the extension's metadata/ to deploy instead of caretaker_install_spec.json")
    p.add_argument("--platform", nargs=2, metavar=("NAME", "VERSION"),
                   help="the host's platform key (default: from the system, e.g. ubuntu-linux 14.04)")
    p.add_argument("--config", action="append", metavar="ID.PROP=VALUE",
                   help="a config port value of an instance (its id, or its key as `name version`); JSON values are parsed")
    p.add_argument("--find-links", metavar="DIR", help="install pip packages from the wheels in DIR only (no index); remembered by the home")
    p.add_argument("--port", type=int, help="with start: the TCP port (default: the service's config port; 0 = any)")
    p.add_argument("--listen", metavar="ADDRESS",
                   help="with start: the address to listen on (default 127.0.0.1)")
    p.add_argument("--key-file", metavar="FILE",
                   help="the cluster key (mode 0600): a deploy installs it as <home>/config/cluster.key "
                        "(default: keep the home's, or make one); with start, the caretaker uses it instead")
    p.add_argument("--tls-cert", metavar="PEM", help="with start, --tls-key and --tls-ca: the caretaker speaks TLS "
                                                     "on every connection, with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="with start: the private key of --tls-cert")
    p.add_argument("--tls-ca", metavar="PEM", help="with start: the CA that signed its peers' certificates")
    p.add_argument("--timeout", type=float, help="with run: fail the run after this many seconds (the master's, 600)")
    p.add_argument("--keep", action="store_true",
                   help="with a bundle's placement: keep what the last placement installed and this one no longer "
                        "needs (default: removed; never what `deploy --home H RESOURCE` installed)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (what, in which order, why) and change nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--max-members", type=int, metavar="N",
                   help="refuse an archive of more than N members (default {})".format(safetar.MAX_MEMBERS))
    p.add_argument("--max-bytes", type=int, metavar="N",
                   help="refuse an archive of more than N bytes once decompressed (default: 100 times its "
                        "size, at least 64 MiB)")


def home_options(**kwargs):
    """A parser holding the home's options only, a parent of the parsers that take them."""
    p = argparse.ArgumentParser(add_help=False, **kwargs)
    add_home_options(p)
    return p


def parser(command=None, home=None):
    """`deploy [--home DIR ...] COMMAND ...`. The home's options (`home`, a `home_options()`) are
    the top parser's and every home command's; a command's own default is SUPPRESS, so that one
    given before the command's name is kept. Only `command` (the one argv names) is built, with
    its arguments; the others are listed only for `deploy --help` (no command), so that parsing
    one command neither builds every command's parser nor imports `nodes` (`deploy COMMAND
    --help` names that command)."""
    p = argparse.ArgumentParser(prog="deploy", description=DESCRIPTION, epilog=EPILOG, parents=[home or home_options()],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in (("install", "install RESOURCEs (the default command)"),
                            ("start", "start a service of the home"), ("stop", "stop a service of the home"),
                            ("status", "whether a service of the home runs"),
                            ("run", "run a topology on the home"), ("place", "place a topology's blocks on nodes")):
        if command is None:
            commands.add_parser(name, help=help_text)
        elif name != command:
            continue
        elif name == "place":
            from . import nodes

            p.place = commands.add_parser("place", parents=[nodes.parser()], add_help=False, help=help_text,
                                          description=nodes.DESCRIPTION, epilog=nodes.EPILOG, prog="deploy place",
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
        else:
            sub = commands.add_parser(name, help=help_text, prog="deploy --home DIR " + name,
                                      parents=[home_options(argument_default=argparse.SUPPRESS)])
            if name == "install":
                sub.add_argument("resources", nargs="*", default=[], metavar="RESOURCE",
                                 help="what to deploy (default: the caretaker's install spec)")
            elif name == "run":
                sub.add_argument("topology", metavar="TOPOLOGY", help="the topology to run")
            else:
                sub.add_argument("service", nargs="?", default=None, metavar="SERVICE", help="the service (default: the caretaker)")
    return p


def parse(argv):
    """The parsed `argv`. Without a command's name (`deploy --home H [RESOURCE...]`), the command is
    `install`: argv names one when its first positional argument (also right after `--`) is a command."""
    home = home_options()
    scan = argparse.ArgumentParser(add_help=False, parents=[home])
    scan.add_argument("words", nargs="*")
    argv = list(argv)
    words = scan.parse_known_args(argv)[0].words
    command = None
    if words[:1] and words[0] in COMMANDS:
        command = words[0]
        # `--home H -- run TOPOLOGY` (as `cargo xtask` passes it): the command's name may follow `--`.
        dash = argv.index("--") if "--" in argv else -1
        if 0 <= dash and argv[dash + 1:dash + 2] == words[:1]:
            del argv[dash]
    elif words or not {"-h", "--help"} & set(argv):
        command = "install"
        argv = ["install"] + argv
    p = parser(command, home)
    args = p.parse_args(argv)
    if args.command == "place":
        from . import nodes

        nodes.check_args(p.place, args)
    elif args.home is None:
        p.error("the following arguments are required: --home")
    return args


def parse_config(items):
    config = {}
    for item in items:
        target, sep, value = item.partition("=")
        owner, dot, prop = target.rpartition(".")
        if not sep or not dot or not owner or not prop:
            raise DeployError("--config {}: expected ID.PROP=VALUE".format(item), 2)
        try:
            value = json.loads(value)
        except ValueError:
            pass
        config.setdefault(owner, {})[prop] = value
    return config


def print_steps(steps, home, dry_run, changed):
    out = sys.stderr
    for step in steps:
        line = "  {:<10} {:<28} {:<16} {}".format(step.action, key_text(step.planned.key), step.kind, step.planned.reason)
        if step.action != "keep":
            line += "  ({})".format(step.why)
        out.write(line + "\n")
    done = [s for s in steps if s.action != "keep"]
    replaced = [key_text(s.planned.key) for s in done if s.action == "replace"]
    removed = [key_text(s.planned.key) for s in done if s.action == "remove"]
    notes = ["replaced: " + ", ".join(replaced)] if replaced else []
    notes += ["removed: " + ", ".join(removed)] if removed else []
    out.write("{} {} resource(s){}, {} already installed, in {}{}\n".format(
        "Plan: would deploy" if dry_run else "Deployed", len(done),
        " ({})".format("; ".join(notes)) if notes else "", len(steps) - len(done), home.root,
        "; engage/ updated" if changed else ""))


def exit_now(code):
    """Ends the process with `code` once stdout and stderr are flushed, without the interpreter's
    teardown (finalizing every module and object left: milliseconds of a deploy on demand, for
    nothing). By then every file the deployer wrote is closed (each in a `with` block or closed
    in a `finally`), every thread it started has been joined, and nothing is registered with
    atexit. A flush that fails (stdout closed by its reader) exits with 120, as Python does."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 120
    os._exit(code or 0)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        # First, before any home or file is read or written: a Python the deployer supports.
        safetar.check_interpreter()
    except DeployError as error:
        sys.stderr.write("error: {}\n".format(error))
        if getattr(args, "json", False):
            sys.stdout.write(json.dumps({"error": str(error), "exit_code": error.code}, sort_keys=True) + "\n")
        return error.code
    if args.command == "place":
        from . import nodes

        return nodes.main(args)
    home = Home(args.home)
    try:
        if args.command in ("start", "stop", "status"):
            from . import service

            if args.command == "start":
                tls = [args.tls_cert, args.tls_key, args.tls_ca]
                if any(tls) and not all(tls):
                    raise DeployError("--tls-cert, --tls-key and --tls-ca go together (help: give all three, or "
                                      "none)", 2)
                result = service.start(home, args.service, args.port, args.listen,
                                       key_file=os.path.abspath(args.key_file) if args.key_file else None,
                                       tls=[os.path.abspath(f) for f in tls] if all(tls) else None)
            elif args.command == "stop":
                result = service.stop(home, args.service)
            else:
                result = service.status(home, args.service)
            if args.json:
                sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
            else:
                sys.stderr.write("{}: {}{}\n".format(
                    result["service"], "running" if result["running"] else "stopped",
                    " (pid {}, port {}; its next run uses installed generation {})".format(
                        result["pid"], result["port"], result["generation"]) if result["running"] else ""))
            return 0
        run_topology = args.topology if args.command == "run" else None
        resources = args.resources if args.command == "install" else []
        if args.release and args.tree:
            raise DeployError("--release and --tree: give one extension to deploy from", 2)
        if args.key and not args.release:
            raise DeployError("--key checks a release's signature: give it with --release ARCHIVE", 2)
        max_members = safetar.MAX_MEMBERS if args.max_members is None else args.max_members
        from datablox_framework import auth

        from . import clusterkey
        from .deploy import Options, deploy
        from .extension import Extension, default_tree

        # A topology to run is read and checked against the extension before anything is deployed.
        if run_topology is not None:
            from . import placement, run

            topology = placement.read_topology(run_topology)
        else:
            topology = None

        def deploy_from(tree):
            if topology is not None:
                placement.check_blocks(Extension(tree), topology, run_topology)
            options = Options(args.home, tree, resources, args.spec,
                              tuple(args.platform) if args.platform else None, parse_config(args.config or []),
                              args.find_links, max_members, args.max_bytes, keep=args.keep)
            if not args.dry_run:
                options.log = home.log_event
            return deploy(options, dry_run=args.dry_run)

        key = clusterkey.read(args.key_file, "the --key-file") if args.key_file else None
        if args.release:
            from . import release

            with release.Unpacked(args.release, args.key, max_members, args.max_bytes) as tree:
                steps, changed = deploy_from(tree)
        else:
            steps, changed = deploy_from(args.tree or default_tree())
        key_written = not args.dry_run and clusterkey.install(auth.key_path(home.root), key)
        if key_written:
            home.log_event("cluster key {} written".format(auth.key_path(home.root)))
        if args.json and run_topology is None:
            # `changed`: whether this run changed the home (Ansible's changed_when reads it).
            altered = not args.dry_run and (changed or key_written or any(s.action != "keep" for s in steps))
            sys.stdout.write(json.dumps({"home": home.root, "dry_run": args.dry_run, "engage_updated": changed,
                                         "key_written": key_written, "changed": altered,
                                         "steps": [s.to_json(home) for s in steps]}, sort_keys=True, indent=2) + "\n")
        else:
            print_steps(steps, home, args.dry_run, changed)
            if key_written:
                sys.stderr.write("Cluster key written: {}\n".format(auth.key_path(home.root)))
        if run_topology is not None and not args.dry_run:
            return run.run_home(home, topology, args.timeout, args.json)
        return 0
    except DeployError as error:
        if not (args.dry_run or args.command == "status" or isinstance(error, NotAHome)):
            home.log_event("{}: {}".format("refused" if isinstance(error, safetar.Refused) else "failed", error))
        sys.stderr.write("error: {}\n".format(error))
        if args.json:
            sys.stdout.write(json.dumps({"error": str(error), "exit_code": error.code}, sort_keys=True) + "\n")
        return error.code
    except KeyboardInterrupt:
        home.log_event("failed: interrupted")
        return 130
    except Exception as error:
        home.log_event("failed: {}: {}".format(type(error).__name__, error))
        raise
