#!/usr/bin/env python3
"""Checks a generated Engage extension tree rule by rule as Engage's own code would, without Engage.

Usage: check_extension.py [--static] [--json] DIST_DIR

Checks `DIST_DIR/datablox` (written by `cargo xtask dist`). Every rule restates one piece of
Engage's source and names it (file and function) in a comment and in its message; paths are those
of Engage's repository: `python_pkg/engage/...` (its Python 2.7 engine and drivers) and
`config_src/config/...` (its OCaml config engine). The rules, in the order they run, and the
module of `ci/engage_rules/` that holds them:

  layout        install_extension.py; engine/preprocess_resources.py; engine/library.py  (layout.py)
  definitions   parse_rdef.ml parse_rdef / parse_port_def / parse_prop_initialization /
                parse_*_constraint; utils/rdef.py Resource  (definitions.py; packages.json: packages.py)
  references    templates.ml parse_string; parse_rdef.ml parse_port_reference;
                generate.ml port_reference_of_string / check_ports_exist_in_rdef  (references.py)
  constraints   generate.ml matches (+ resources.ml scalar_*); utils/rdef.py BaseConstraint.validate
                and Resource.validate (port mappings, input ports fed in every solution)  (constraints.py)
  config ports  generate.ml fill_in_config_ports / get_config_ports (values nobody gives)  (definitions.py)
  library       engine/library.py _parse_entry / _parse_package / _load_newstyle_entry /
                preprocess_library_file; what each of our drivers accepts  (library.py, packages.py)
  installer     engine/installer_config.py parse_installer_config;
                engine/engage_file_layout.py get_install_spec_template_file  (installer.py)
  install specs parse_resource.ml parse_resource_inst; engine/preprocess_resources.py
                validate_install_spec / create_install_spec; generate.ml
                check_instance_key_exists_in_rdef  (install_specs.py)
  drivers       (unless --static) engine/library.py LibraryEntry.get_manager_class and
                _load_newstyle_entry; drivers/resource_manager.py and service_manager.py (the
                contract, incl. get_pid_file_path); engine/install_sequencer.py run_install: every
                resource our drivers install is installed into a home laid out as Engage's
                bootstrap leaves it (python/ with the virtualenv's bin/python, data/), with
                Engage-like package objects from the stub of engage-extension/tests/engage_stub,
                pip replaced by a stand-in that writes what pip's --target writes; the
                virtualenv's interpreter must survive every install (drivers/genforma/python.py
                validate_post_install checks it on every deployment).  (drivers.py, run in the stub
                tree by driver_probe.py, with fake_pip.py as pip)

In engage_rules/, engage_facts.py holds what the rules share (Engage's file names, its standard
keys, version comparison) and tree.py the tree under check and the problems found; this file runs
the rules in order and prints the report.

What it cannot see: Engage's standard metadata beyond the keys listed in engage_facts.py STANDARD,
the constraint solver's choices, and anything a driver does against the real system (pip, the
network).
Prints one line per problem (`file: what (Engage: where)`) and a summary (with --json, one JSON
object: ok, tree, summary, problems); exits 1 if there is any problem, 2 on bad usage. Python 3,
standard library only.
"""
import json
import os
import sys

from engage_rules.definitions import check_definition, load_definitions
from engage_rules.drivers import check_drivers
from engage_rules.engage_facts import EXTENSION
from engage_rules.install_specs import check_install_specs
from engage_rules.installer import check_installer
from engage_rules.layout import check_layout
from engage_rules.library import check_coverage, load_library
from engage_rules.tree import Tree


def run(tree, static_only):
    """Every rule, in order; with the drivers run, returns (interpreters, resources installed)."""
    if not os.path.isdir(tree.root):
        tree.problem(tree.root, "not a directory (expected DIST_DIR/%s)" % EXTENSION)
        return None
    check_layout(tree)
    load_definitions(tree)
    load_library(tree)
    check_coverage(tree)
    for pair, (definition, relative) in sorted(tree.definitions.items()):
        check_definition(tree, pair, definition, relative)
    templates = check_installer(tree)
    check_install_specs(tree, templates)
    if static_only or not os.path.isdir(tree.path("drivers")):
        return None
    return check_drivers(tree)


def main(argv):
    args = argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    static_only = "--static" in args
    as_json = "--json" in args
    args = [arg for arg in args if arg not in ("--static", "--json")]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: check_extension.py [--static] [--json] DIST_DIR", file=sys.stderr)
        return 2
    tree = Tree(os.path.join(os.path.abspath(args[0]), EXTENSION))
    ran = run(tree, static_only)
    summary = "%d resource definitions, %d driver directories" % (len(tree.definitions), len(tree.driver_dirs))
    if ran is not None:
        summary += ", drivers imported under %d interpreter(s), %d resources installed" % ran
    if as_json:
        print(json.dumps({"ok": not tree.problems, "tree": tree.root, "summary": summary,
                          "problems": [{"file": f, "message": m} for f, m in tree.problems]}, indent=2))
        return 1 if tree.problems else 0
    for file_name, message in tree.problems:
        print("%s: %s" % (file_name, message))
    if tree.problems:
        print("check_extension: %d problem(s) in %s (%s)" % (len(tree.problems), tree.root, summary))
        return 1
    print("check_extension: ok: %s (%s)" % (tree.root, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
