"""`deploy place`: a topology on several nodes. Reads the topology, places its blocks
(`placement`), prints the plan, then (unless `--dry-run`) writes one bundle per node (`--bundle
DIR`, see `bundle`), deploys one home per node on this machine (`--homes-dir DIR`, each home
installed from its node's bundle, so it holds exactly that node's closure), or writes an Ansible
inventory and playbook with the bundles (`--ansible DIR`, see `ansible`).
"""

import argparse
import json
import os
import shutil
import sys

from datablox_framework import auth

from . import DeployError, ansible, bundle, clusterkey, outdir, placement, safetar
from .extension import Extension, default_tree, key_text

DESCRIPTION = """\
Place a topology's blocks on nodes and give each node exactly what its blocks need.

Blocks with `at` go to that node; the others are spread deterministically, balancing the archive
bytes per node (largest first, each to the node with the fewest bytes so far). Every node gets
the caretaker and its dependencies. The plan is printed first (stderr, or JSON on stdout with
--json); then, unless --dry-run:

  --bundle DIR      DIR/<node>/ per node: the node deployer, the node's part of the extension,
                    node_install_spec.json, SHA256SUMS, topology.json; DIR/plan.json and
                    DIR/topology.json (the placed topology). On the node:
                    python3 DIR/<node>/bin/deploy --home H
  --homes-dir DIR   one home per node on this machine, DIR/<node>/, deployed from its bundle;
                    DIR/plan.json and DIR/topology.json
  --ansible DIR     DIR/inventory.ini (one host per node: datablox_home, datablox_bundle,
                    datablox_port), DIR/site.yml (per host: copy and unpack its bundle, install
                    it, start the caretaker, wait for its port), DIR/bundles/<node>.tar,
                    DIR/plan.json, DIR/topology.json. Then, with ansible-core:
                    ansible-playbook -i DIR/inventory.ini DIR/site.yml   (again: changed=0)

Each writes the cluster key, DIR/cluster.key (mode 0600): --key-file's, else the one an earlier
run left there, else a new one. Every home of --homes-dir gets a copy in <home>/config/; a
bundle's node gets it with `deploy --home H --key-file DIR/cluster.key` (it is beside the
bundles, not in them); the playbook copies it to every host (mode 0600, no_log).
"""

EPILOG = """\
Exit codes: 0 done, 1 bad topology, nodes or dist (nothing written), 2 bad usage.
"""


def parser():
    p = argparse.ArgumentParser(prog="deploy place", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topology", required=True, metavar="FILE", help="the topology (the caretaker's JSON)")
    p.add_argument("--nodes", required=True, metavar="A,B,...", help="the node names, comma-separated")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--bundle", metavar="DIR", help="write one bundle per node into DIR")
    out.add_argument("--homes-dir", metavar="DIR", help="deploy one home per node into DIR/<node>")
    out.add_argument("--ansible", metavar="DIR", help="write an Ansible inventory, playbook and the bundles into DIR")
    p.add_argument("--tree", help="the extension tree (default: the one this deployer is in)")
    p.add_argument("--platform", nargs=2, metavar=("NAME", "VERSION"),
                   help="the nodes' platform key (default: this system's, e.g. ubuntu-linux 14.04)")
    p.add_argument("--find-links", metavar="DIR", help="with --homes-dir only: pip packages from the wheels in DIR only (refused with --bundle and --ansible)")
    p.add_argument("--run", action="store_true",
                   help="with --homes-dir: then run the placed topology on the homes' caretakers (started "
                        "unless running, stopped again) and exit with the master's exit code")
    p.add_argument("--timeout", type=float, help="with --run: fail the run after this many seconds (the master's, 600)")
    p.add_argument("--keep", action="store_true",
                   help="with --homes-dir: keep what a home no longer needs (default: removed, when the last "
                        "placement installed it and not a `deploy --home H RESOURCE`)")
    p.add_argument("--key-file", metavar="FILE",
                   help="the cluster key to deliver (default: DIR/cluster.key of an earlier run, else a new one)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    p.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")
    return p


def human_size(size):
    return "{} B".format(size) if size < 10240 else "{:.1f} KiB".format(size / 1024.0)


def print_plan(plan, topology_path, out):
    blocks = plan.topology["blocks"]
    width = max(len(b["id"]) for b in blocks)
    label = max(len("{} {}".format(b["name"], b["version"])) for b in blocks)
    node_width = max(len(n) for n in plan.nodes)
    out.write("Placement of {} on {} node(s) ({} {}):\n".format(
        topology_path, len(plan.nodes), plan.platform[0], plan.platform[1]))
    for block in blocks:
        out.write("  {:<{w}}  {:<{l}}  -> {:<{n}}  {:<6}  {:>9}\n".format(
            block["id"], "{} {}".format(block["name"], block["version"]), plan.assignment[block["id"]],
            "at" if "at" in block else "", human_size(plan.weights[block["id"]]), w=width, l=label, n=node_width))
    for node in plan.nodes:
        keys = ", ".join(key_text(k) for k in plan.closures[node])
        out.write("  node {:<{n}}  {} block(s), {} resource(s), {}: {}\n".format(
            node, len(plan.blocks_of(node)), len(plan.closures[node]), human_size(plan.node_bytes(node)), keys,
            n=node_width))


def plan_document(plan, args):
    document = plan.to_json()
    document["topology"] = args.topology
    document["dry_run"] = args.dry_run
    if args.bundle:
        document["output"] = {"kind": "bundle", "dir": os.path.abspath(args.bundle)}
    elif args.homes_dir:
        document["output"] = {"kind": "homes-dir", "dir": os.path.abspath(args.homes_dir)}
    elif args.ansible:
        document["output"] = {"kind": "ansible", "dir": os.path.abspath(args.ansible)}
    else:
        document["output"] = None
    return document


def is_home(path):
    """Whether the directory `path` holds a home's config/installed_resources.json."""
    return outdir.read_marker(os.path.join(path, "config", "installed_resources.json")) is not None


def check_homes_dir(homes_dir, nodes):
    """Refuse when DIR/<node> exists and is not a deployment home (the output-directory rule;
    nothing written)."""
    if os.path.lexists(homes_dir) and not os.path.isdir(homes_dir):
        raise DeployError("{} exists and is not a directory (help: pass a directory for the homes)".format(homes_dir))
    for node in nodes:
        home = os.path.join(homes_dir, node)
        if outdir.refusal(home, is_home):
            raise DeployError("{} exists and is not a deployment home (help: remove it, or pass another "
                              "--homes-dir; nothing was written)".format(home))


def deploy_homes(extension, plan, args, key):
    """Stage the bundles under DIR, deploy each into DIR/<node>, write plan.json and topology.json."""
    from .deploy import Options, deploy
    from .home import write_atomically

    homes_dir = os.path.abspath(args.homes_dir)
    check_homes_dir(homes_dir, plan.nodes)
    os.makedirs(homes_dir, exist_ok=True)
    clusterkey.install(os.path.join(homes_dir, clusterkey.NAME), key)
    staging = bundle.stage(extension, plan, homes_dir)
    results = {}
    try:
        for node in plan.nodes:
            options = Options(os.path.join(homes_dir, node), os.path.join(staging, node), (), bundle.NODE_SPEC,
                              plan.platform, None, args.find_links, keep=args.keep)
            # Each home's deploy.log records this deploy, its refusals and failures, as the
            # single-home command's does.
            options.log = options.home.log_event
            try:
                steps, _ = deploy(options)
            except DeployError as error:
                options.home.log_event("{}: {}".format("refused" if isinstance(error, safetar.Refused) else "failed",
                                                       error))
                raise DeployError("node `{}` ({}): {} (homes deployed before it are kept; run again to "
                                  "complete)".format(node, options.home.root, error), error.code)
            clusterkey.install(auth.key_path(options.home.root), key)
            results[node] = [s.to_json(options.home) for s in steps]
        document = dict(plan.to_json(), homes_dir=homes_dir)
        write_atomically(os.path.join(homes_dir, "plan.json"), bundle.json_bytes(document))
        write_atomically(os.path.join(homes_dir, "topology.json"), bundle.json_bytes(plan.placed_topology()))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def check_args(p, args):
    """Refuse (`p.error`, exit code 2) the options that do not go together."""
    if args.find_links and not args.homes_dir:
        # Bundles and Ansible install on the nodes, where this machine's wheel directory is not.
        p.error("--find-links applies to --homes-dir only (help: for --bundle, pass --find-links to the "
                "node's `deploy --home`; for --ansible, set datablox_find_links= per host in inventory.ini)")
    if args.run and not args.homes_dir:
        p.error("--run needs --homes-dir: the caretakers run in homes on this machine")


def main(args):
    """`deploy place`, with the arguments `cli` parsed."""
    printed = False
    try:
        tree = args.tree or default_tree()
        topology = placement.read_topology(args.topology)
        extension = Extension(tree)
        out_dir = args.bundle or args.homes_dir or args.ansible
        # The last placement written into the same directory keeps its blocks where they were.
        previous = placement.previous_assignment(os.path.join(out_dir, "plan.json"), topology) if out_dir else {}
        plan = placement.plan(extension, topology, placement.parse_nodes(args.nodes), args.platform,
                              previous=previous, where=args.topology)
        if args.bundle:
            bundle.check_target(os.path.abspath(args.bundle))
        if args.homes_dir:
            check_homes_dir(os.path.abspath(args.homes_dir), plan.nodes)
        if args.ansible:
            ansible.check_target(os.path.abspath(args.ansible))
        document = plan_document(plan, args)
        if args.json and not args.run:  # with --run, stdout is the master's result
            sys.stdout.write(json.dumps(document, sort_keys=True, indent=2) + "\n")
            sys.stdout.flush()
            printed = True
        else:
            print_plan(plan, args.topology, sys.stderr)
        if args.dry_run or not (args.bundle or args.homes_dir or args.ansible):
            if not args.json:
                sys.stderr.write("Plan only: nothing written.\n")
            return 0
        out_dir = os.path.abspath(args.bundle or args.ansible or args.homes_dir)
        key = clusterkey.for_output(out_dir, args.key_file)
        if args.bundle:
            out = bundle.write(extension, plan, args.bundle, key)
            if not args.json:
                sys.stderr.write("Wrote {} bundle(s) into {}\n".format(len(plan.nodes), out))
        elif args.ansible:
            written = ansible.write(args.ansible, plan.nodes, lambda parent: bundle.stage(extension, plan, parent),
                                    key=key)
            if not args.json:
                sys.stderr.write("Wrote an inventory of {} host(s), a playbook and their bundles into {}\n"
                                 "Next: set how Ansible reaches each host (ansible_host=, ansible_user=) in {}, "
                                 "then: ansible-playbook -i {} {}\n".format(
                                     len(plan.nodes), written["ansible"], written["inventory"], written["inventory"],
                                     written["playbook"]))
        else:
            results = deploy_homes(extension, plan, args, key)
            if not args.json:
                for node in plan.nodes:
                    done = [s for s in results[node] if s["action"] != "keep"]
                    replaced = [s["key"]["name"] + " " + s["key"]["version"] for s in done if s["action"] == "replace"]
                    sys.stderr.write("Deployed {} resource(s){} into {}\n".format(
                        len(done), " (replaced: {})".format(", ".join(replaced)) if replaced else "",
                        os.path.join(os.path.abspath(args.homes_dir), node)))
            if args.run:
                from . import run
                from .home import Home

                homes_dir = os.path.abspath(args.homes_dir)
                homes = [(node, Home(os.path.join(homes_dir, node))) for node in plan.nodes]
                return run.run_homes(homes, os.path.join(homes_dir, "topology.json"), args.timeout, args.json)
        return 0
    except DeployError as error:
        sys.stderr.write("error: {}\n".format(error))
        if args.json and not printed:
            sys.stdout.write(json.dumps({"error": str(error), "exit_code": error.code}, sort_keys=True) + "\n")
        return error.code
    except KeyboardInterrupt:
        return 130
