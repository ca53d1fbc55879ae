"""One deploy: requests -> plan (what, in which order, why) -> each step applied under the home's
lock. `plan()` writes nothing; `deploy()` holds the lock from reading installed_resources.json to
writing it, so two deployers on one home never both install a resource.
"""

import collections
import os
import re
import shutil
import sys
import time

from datablox_framework.naming import name_problem

from . import DeployError, safetar
from .extension import NODE_SPEC, Extension, did_you_mean, key_text, key_tuple, keys_text
from .home import PIP_NOT_IMPORTABLE, Home
from .resolve import HOST_ID, Planned, Resolver, compare_versions, detect_platform, host_instance

PIP_CLASSES = ("PipLink", "EasyInstallLink")
RECORD_EVERY = float(os.environ.get("DATABLOX_DEPLOY_RECORD_EVERY", "0.25"))
# Archives prepared at once (threads); DATABLOX_DEPLOY_THREADS=1 prepares them one at a time.
WORKERS = int(os.environ.get("DATABLOX_DEPLOY_THREADS") or min(4, os.cpu_count() or 1))


class Options(object):
    def __init__(self, home, tree, requests=(), spec=None, platform=None, config=None, find_links=None,
                 max_members=safetar.MAX_MEMBERS, max_bytes=None, log=None, keep=False):
        self.home = Home(home)
        self.tree = tree
        self.requests = list(requests)
        self.spec = spec
        self.platform = platform
        self.config = dict(config or {})
        self.find_links = find_links
        self.limits = (max_members, max_bytes)
        self.log = log or (lambda message: None)
        # Keep what the last placement installed and this one does not need (`--keep`).
        self.keep = keep


class Step(object):
    """What a deploy does with one resource."""

    def __init__(self, planned, kind, target, location, action, why):
        self.planned = planned
        self.kind = kind
        self.target = target
        self.location = location
        self.action = action
        self.why = why

    def to_json(self, home):
        target = self.target
        if target and target.startswith(home.root + os.sep):
            target = os.path.relpath(target, home.root)
        return {"id": self.planned.id, "key": dict(self.planned.instance["key"]), "kind": self.kind,
                "action": self.action, "reason": self.planned.reason, "why": self.why, "target": target}


def parse_request(extension, text):
    """`name version`, `name@version` or `name` (when one version is defined) -> key."""
    match = re.fullmatch(r"\s*([^\s@]+)(?:\s+|@)(\S+)\s*", text)
    name, version = (match.group(1), match.group(2)) if match else (text.strip(), None)
    problem = name_problem("resource name", name) or (version is not None and name_problem("version", version))
    if problem:
        raise DeployError("RESOURCE {!r}: {} (help: name a resource as `name@version`, e.g. `word-count@1.0`; "
                          "a name is not empty and has no leading `-`, no `/`, `=`, white space or control "
                          "characters)".format(text, problem), 2)
    found = extension.find(name, version)
    if len(found) == 1:
        return found[0]
    if not found:
        versions = extension.find(name) if version is not None else []
        if versions:
            raise DeployError("`{}` has no version {} (help: defined versions: {}; e.g. `{}@{}`)".format(
                name, version, ", ".join(k[1] for k in versions), versions[-1][0], versions[-1][1]), 2)
        names = sorted(set(k[0] for k in extension.order))
        raise DeployError("unknown resource `{}` (help: {}one of {})".format(
            text, did_you_mean(name, names), keys_text(extension.order)), 2)
    raise DeployError("`{}` has versions {}: name one, e.g. `{}@{}`".format(
        name, ", ".join(k[1] for k in found), found[0][0], found[-1][1]), 2)


def requested(extension, options):
    """[(key, id or None, config)] from the RESOURCE arguments, else from the install spec."""
    if options.requests:
        return [(parse_request(extension, text), None) for text in options.requests]
    spec = extension.spec(options.spec or extension.default_spec())
    out = []
    for instance in spec:
        key = instance.get("key", {})
        if key.get("name") == "dynamic-host":
            continue
        if instance.get("config_port"):
            options.config.setdefault(instance["id"], {}).update(instance["config_port"])
        out.append((key_tuple(key), instance.get("id")))
    return out


def classify(extension, home, planned):
    """(kind, target, location) of a resource's first package."""
    key = planned.key
    packages = extension.package_list(key)
    if packages is None:
        raise DeployError("`{}` has no packages in {} (help: rebuild the extension)".format(key_text(key), extension.root))
    if not packages:
        return "none", None, None
    package = packages[0]
    kind, cls, location = package.get("type"), package.get("package_class"), package.get("location", "")
    instance = planned.instance
    if kind == "Archive":
        block_home = instance.get("output_ports", {}).get("block_info", {}).get("home")
        if block_home:
            bloxpath = instance.get("input_ports", {}).get("datablox_framework", {}).get("BLOXPATH")
            if bloxpath and os.path.dirname(os.path.normpath(block_home)) != os.path.normpath(bloxpath):
                raise DeployError("`{}`: its home {} is not directly in BLOXPATH {}".format(key_text(key), block_home, bloxpath))
            target = block_home
            kind = "block"
        else:
            top = location[:-len(".tgz")] if location.endswith(".tgz") else location.rsplit(".", 1)[0]
            target = home.path("python", top)
            kind = "python-archive"
    elif kind == "File":
        target = instance.get("config_port", {}).get("path") or home.path("data", location)
        kind = "file"
    elif cls in PIP_CLASSES:
        return "pip", None, location
    elif cls == "DummyPackage":
        return ("system-python" if extension.manager(key).endswith("system_python_driver") else "dummy"), None, None
    else:
        raise DeployError("`{}`: package class {} is not supported by the node deployer (help: deploy it "
                          "with Engage, or install it by hand)".format(key_text(key), cls))
    target = os.path.normpath(target)
    if not target.startswith(home.root + os.sep):
        raise DeployError("`{}`: its target {} is outside the home {}".format(key_text(key), target, home.root))
    return kind, target, location


def decide(extension, planned, kind, target, location):
    """(action, why) for one resource: install, replace, reinstall or keep."""
    if not planned.existing:
        return "install", "not installed"
    recorded = planned.instance.get("properties", {}).get("datablox_package", {})
    if KINDS[kind].digested:
        current = extension.sums.get(location)
        if recorded.get("sha256") != current:
            return "replace", "{} changed: {} -> {}".format(location, (recorded.get("sha256") or "none")[:12], (current or "none")[:12])
        if not os.path.exists(target):
            return "reinstall", "{} is missing".format(target)
    return "keep", "installed"


def unchanged(extension, home, instance, installed_keys):
    """(kind, target, location) of an installed archive or file that `decide` would keep, read
    from its install record alone, else None. An installed instance is never resolved again (its
    ports are kept as installed), so its definition only names its package, and SHA256SUMS
    digests that package's bytes: kept when the record's kind is digested, SHA256SUMS still gives
    the recorded location the recorded digest, the recorded target is in the home and exists, and
    what it was installed with (environment, peers) is all installed. Anything else (another
    digest, a missing target or dependency, a package kind without a digest) is planned from the
    definition (`classify`, `decide`), as a resource requested by name is."""
    record = instance.get("properties", {}).get("datablox_package", {})
    kind, target, location, digest = record.get("kind"), record.get("path"), record.get("location"), record.get("sha256")
    if kind not in KINDS or not KINDS[kind].digested or not target or digest is None:
        return None
    if extension.sums.get(location) != digest or not target.startswith(home.root + os.sep) or not os.path.exists(target):
        return None
    for ref in (instance.get("environment") or []) + (instance.get("peers") or []):
        if key_tuple(ref.get("key", {})) not in installed_keys:
            return None
    return kind, target, location


def plan(options, extension, installed):
    home = options.home
    platform_key = options.platform or host_platform(installed) or detect_platform(extension)
    host = host_instance(home.root, platform_key)
    resolver = Resolver(extension, host, installed, options.config)
    for key, instance_id in requested(extension, options):
        resolver.request(key, instance_id)
    requested_keys = [planned.key for planned in resolver.order]
    drop = []
    if placement_deploy(options, extension) and not options.keep:
        drop = unneeded(home, resolver.installed, requested_keys)
    drop_ids = set(instance["id"] for instance in drop)
    # Every resource installed already is planned too, whether a RESOURCE, an install spec or a
    # caretaker (on demand) installed it: one whose archive changed is replaced by any deploy.
    # One whose record shows it unchanged is kept as recorded, without reading its definition.
    kept_keys = set(key_tuple(i.get("key", {})) for i in resolver.installed if i["id"] not in drop_ids)
    recorded = {}
    for instance in resolver.installed:
        if instance["id"] in drop_ids:
            continue
        key = key_tuple(instance.get("key", {}))
        if key in resolver.by_key:
            continue
        recorded[key] = unchanged(extension, home, instance, kept_keys)
        if recorded[key] is not None:
            resolver.plan_installed(instance, "installed")
        elif extension.definition(key) is not None and extension.package_list(key) is not None:
            resolver.request(key, reason="installed")
    steps = []
    for planned in resolver.order:
        if recorded.get(planned.key) is not None:
            kind, target, location = recorded[planned.key]
            action, why = "keep", "installed"
        else:
            kind, target, location = classify(extension, home, planned)
            action, why = decide(extension, planned, kind, target, location)
        steps.append(Step(planned, kind, target, location, action, why))
    for instance in drop:
        record = instance.get("properties", {}).get("datablox_package", {})
        steps.append(Step(Planned(instance, None, "installed by the last placement", True), record.get("kind", "none"),
                          record.get("path"), record.get("location"), "remove", "this node's placement no longer needs it"))
    return host, steps, requested_keys


def placement_deploy(options, extension):
    """Whether this deploy installs a node's placement (a bundle's node install spec)."""
    return not options.requests and (options.spec or extension.default_spec()) == NODE_SPEC


def unneeded(home, installed, requested_keys):
    """The installed instances the last placement installed (recorded in the home's settings)
    that this one does not need: not among `requested_keys`, never a resource deployed by name
    (`deploy --home H RESOURCE`), never one a kept instance refers to, and never a pip package
    (its files in python/ are not recorded one by one)."""
    settings = home.settings()
    placed, by_name = set(settings.get("placed", [])), set(settings.get("by_name", []))
    wanted = set(key_text(key) for key in requested_keys)
    drop = [i for i in installed if key_text(i["key"]) in placed - wanted - by_name
            and i.get("properties", {}).get("datablox_package", {}).get("kind") != "pip"]
    while True:
        dropped = set(i["id"] for i in drop)
        needed = set()
        for instance in installed:
            if instance["id"] in dropped:
                continue
            for ref in (instance.get("environment") or []) + (instance.get("peers") or []) + [instance.get("inside") or {}]:
                needed.add(ref.get("id"))
        still = [i for i in drop if i["id"] not in needed]
        if len(still) == len(drop):
            return drop
        drop = still


def host_platform(installed):
    for instance in installed:
        if instance.get("id") == HOST_ID:
            return key_tuple(instance["key"])
    return None


def prepare_archive(options, extension, step, record):
    prepared, record["sha256"] = options.home.prepare_archive(extension, step.location, options.limits)
    return lambda: options.home.place(prepared, step.target)


def prepare_file(options, extension, step, record):
    prepared, record["sha256"] = options.home.prepare_file(extension, step.location)
    return lambda: options.home.place(prepared, step.target)


def prepare_pip(options, extension, step, record):
    home = options.home
    module = re.sub("[.-]", "_", step.planned.key[0].lower())
    if home.importable(module):
        record["how"] = "already importable"
        return lambda: None
    target, output = home.prepare_pip(step.location, options.find_links)
    record["how"] = "pip install --target"

    def commit():
        options.log(output)
        for name in sorted(os.listdir(target)):
            if name not in PIP_NOT_IMPORTABLE and not name.startswith("."):
                home.place(os.path.join(target, name), home.path("python", name))
    return commit


def check_python(options, extension, step, record):
    wanted = step.planned.key[1]
    have = "{}.{}".format(*sys.version_info[:2])
    if compare_versions(have, wanted) < 0:
        raise DeployError("`{}` needs Python {} or newer, this is {} (help: run the deployer with a "
                          "newer python3)".format(key_text(step.planned.key), wanted, have))
    record["python"] = sys.executable
    return lambda: None


def prepare_nothing(options, extension, step, record):
    return lambda: None


# What `classify` names a package: `digested`, replaced when its file's SHA-256 changed;
# `threaded`, prepared on the worker threads (extraction); `prepare(options, extension, step,
# record)` makes what the step installs in staging, fills `record` and returns its commit().
Kind = collections.namedtuple("Kind", "digested threaded prepare")
KINDS = {
    "block": Kind(True, True, prepare_archive),
    "python-archive": Kind(True, True, prepare_archive),
    "file": Kind(True, False, prepare_file),
    "pip": Kind(False, False, prepare_pip),
    "system-python": Kind(False, False, check_python),
    "dummy": Kind(False, False, prepare_nothing),
    "none": Kind(False, False, prepare_nothing),
}


def prepare_step(options, extension, step):
    """Everything a step needs, made in staging; checks that refuse happen here. Returns a
    `commit()` function that puts the result into place and fills the install record."""
    record = {"kind": step.kind}
    if step.location:
        record["location"] = step.location
    if step.target:
        record["path"] = step.target
    return record, KINDS[step.kind].prepare(options, extension, step, record)


def prepare_all(options, extension, work):
    """prepare_step() of every step, in order; archives on a few threads at once (decompression,
    hashing and file writes let other threads run), as each has its own staging directory, from
    inside `.staging/` (`Home.working_in_staging`). On a refusal, the first in plan order is
    raised once every thread has stopped."""
    archives = [i for i, step in enumerate(work) if KINDS[step.kind].threaded]
    if not archives:
        return [prepare_step(options, extension, step) for step in work]
    with options.home.working_in_staging():
        return _prepare(options, extension, work, archives)


def _prepare(options, extension, work, archives):
    workers = min(WORKERS, len(archives))
    results, errors = [None] * len(work), [None] * len(work)
    if workers > 1:
        import threading

        pending = iter(archives)
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    index = next(pending, None)
                    if index is None or any(errors):
                        return
                try:
                    results[index] = prepare_step(options, extension, work[index])
                except Exception as error:  # noqa: raised below, in plan order
                    errors[index] = error
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for error in errors:
            if error is not None:
                raise error
    for index, step in enumerate(work):
        if results[index] is None:
            results[index] = prepare_step(options, extension, step)
    return results


def deploy(options, dry_run=False):
    """Deploys; returns (steps, engage_changed). With dry_run, plans only and writes nothing.

    Under the home's lock: plan against what is installed; prepare every step in `.staging/`
    (digests, archive checks, extraction, pip), so that any refusal leaves the home as it was;
    then update `engage/`, and put each resource into place and record it, one at a time."""
    home = options.home
    extension = Extension(options.tree)
    if dry_run:
        home.check_usable()
        return plan(options, extension, home.installed())[1], False
    home.check_usable()
    created = not os.path.exists(home.root)
    try:
        with home.locked():
            home.clean_staging()
            settings = home.settings()
            if options.find_links:
                settings["find_links"] = os.path.abspath(options.find_links)
            options.find_links = settings.get("find_links")
            installed = home.installed()
            host, steps, requested_keys = plan(options, extension, installed)
            work = [s for s in steps if s.action not in ("keep", "remove")]
            removals = [s for s in steps if s.action == "remove"]
            prepared = prepare_all(options, extension, work)
            # engage/ first: a tree it refuses (a link in it) leaves the home as it was.
            changed = home.sync_engage(extension)
            home.make_layout()
            if options.find_links and home.settings() != settings:
                home.save_settings(settings)
            instances = [host] + [i for i in installed if i.get("id") != HOST_ID]
            # installed_resources.json is written once at the end, and meanwhile at most every
            # RECORD_EVERY seconds: each resource is renamed into place, then recorded, so a deploy
            # killed in between leaves a resource in place but not recorded, which the next run
            # installs again (replacing it whole), never one recorded but half there.
            dirty = not installed  # the host's record is new
            last_write = time.monotonic()
            for step, (record, commit) in zip(work, prepared):
                commit()
                props = step.planned.instance.setdefault("properties", {})
                props["installed"] = True
                props["datablox_package"] = record
                if not step.planned.existing:
                    instances.append(step.planned.instance)
                dirty = True
                options.log("{} {} ({}): {}".format(step.action, key_text(step.planned.key), step.planned.reason, step.why))
                if time.monotonic() - last_write >= RECORD_EVERY:
                    home.write_installed(instances)
                    dirty, last_write = False, time.monotonic()
            for step in removals:
                if step.target and os.path.lexists(step.target):
                    home.remove(step.target)
                instances = [i for i in instances if i.get("id") != step.planned.id]
                dirty = True
                options.log("remove {} ({})".format(key_text(step.planned.key), step.why))
            if dirty:
                home.write_installed(instances)
            remembered = home.settings()
            if placement_deploy(options, extension):
                remembered["placed"] = sorted(key_text(key) for key in requested_keys)
                # The node this home is, which its caretaker tells the master (who checks it
                # against --nodes).
                if extension.node():
                    remembered["node"] = extension.node()
            if options.requests:
                remembered["by_name"] = sorted(set(remembered.get("by_name", [])) |
                                               set(key_text(parse_request(extension, text)) for text in options.requests))
            if remembered != home.settings():
                home.save_settings(remembered)
            home.clean_staging()
            return steps, changed
    except BaseException:
        if os.path.isdir(home.staging):
            shutil.rmtree(home.staging, ignore_errors=True)
        if created and os.path.isdir(home.root) and set(os.listdir(home.root)) <= {".deploy.lock"}:
            shutil.rmtree(home.root, ignore_errors=True)
        raise
