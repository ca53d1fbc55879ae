#!/usr/bin/env bash
# ci/engage-real.sh — deploy our Engage extension with real Engage, built from its source.
#
#   ci/engage-real.sh [--keep] [--work DIR] [--only NAME]... ENGAGE_SRC [DIST]
#
# From an Engage source checkout ENGAGE_SRC (never modified: everything happens on a copy):
#   1. builds Engage's config engine (OCaml + C++, `config_src/`), with three patches that today's
#      OCaml (4.13) and g++ (12) need — see `patch_config_src` below for what and why;
#   2. fills a package cache with what Engage's `bootstrap.py --never-download` installs (virtualenv,
#      nose, pycrypto) and a minimal stand-in for the unpublished `engage_utils` (generated here);
#   3. installs the extension DIST/datablox (default: target/dist, made by `cargo xtask dist`) with
#      Engage's `install_extension.py`, bootstraps a deployment home with `bootstrap.py`;
#   4. deploys with Engage's `deployer`: the caretaker's install spec, then each block of the
#      extension from a spec naming only its key inside `dynamic-host *`, each into a fresh copy of
#      the bootstrapped home;
#   5. prints one line per deployment (OK/FAILED), Engage's own error for each failure, and what
#      it checked. Exit status: 0 all deployments OK, 1 a deployment failed, 2 usage or set-up error.
#
# Not part of `cargo test` and not runnable in CI: Engage's source is in no package registry, and the
# set-up step downloads virtualenv, nose and pycrypto from PyPI (once, into WORK/cache). Needs root
# (it runs Engage in a private mount namespace, see `inner_main`), the Debian packages
# `ocaml ocaml-findlib` (ocamlopt, ocamllex, ocamlyacc), g++, make, and Python 2.7 at $PYTHON27.
#
# Re-runs reuse WORK/cache (the built config engine, keyed by the config_src sources and the
# patches; the downloaded packages; the base Python 2.7 environment), so only the deployments run.
set -euo pipefail

PYTHON27=${PYTHON27:-/root/.pyenv/versions/2.7.18/bin/python2.7}
# Versions fetched into the package cache. virtualenv 16.x is the last that prints a bare version
# number (bootstrap.py parses `virtualenv --version` as dotted integers) and runs on Python 2.7;
# bootstrap.py looks for exactly `nose-1.0.0.tar.gz` and `pycrypto-2.3*.tar.gz`.
VIRTUALENV_VERSION=16.7.12
NOSE_VERSION=1.0.0
PYCRYPTO_VERSION=2.3
# Engage keys a host by its OS; our blocks run inside `ubuntu-linux 14.04` (or `mac-osx`).
PRESENTED_DISTRIB_ID=Ubuntu
PRESENTED_DISTRIB_RELEASE=14.04

usage() {
    cat <<'EOF'
Usage: ci/engage-real.sh [OPTIONS] ENGAGE_SRC [DIST]

Deploy the Datablox Engage extension with real Engage built from the source checkout ENGAGE_SRC.
DIST is the output of `cargo xtask dist` (default: target/dist); its `datablox/` is installed.

Options:
  --keep        keep the run directory (deployment homes, logs) and print its path
  --work DIR    work and cache directory (default: target/engage-real)
  --only NAME   check only this (`installer-config`, `caretaker` or a block's key name); repeatable
  -h, --help    print this help

Exit status: 0 every deployment succeeded, 1 a deployment failed, 2 usage or set-up error.
EOF
}

die() {
    printf 'error: %s\n' "$1" >&2
    if [[ $# -gt 1 ]]; then printf 'help: %s\n' "$2" >&2; fi
    exit 2
}

log() { printf '==> %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Step 1: the config engine.

# The three patches Engage's config engine needs to build with OCaml 4.13 and g++ 12. Applied to a
# copy of config_src; a patch that does not apply is a set-up error.
patch_config_src() {
    local dir=$1
    # (1) minisat: `Clause_new` is a friend template defined inside `class Clause`. Since C++ made
    #     such friends visible only through argument-dependent lookup, and its argument (`vec<Lit>`)
    #     does not bring `Clause` into ADL, `Solver.C` cannot call it ("'Clause_new' was not
    #     declared in this scope"). The constructor is public, so the function does not need to be
    #     a friend: define it after the class, at namespace scope.
    patch -s -l -p1 -d "$dir" <<'EOF'
--- a/3rdparty/minisat2-070721/core/SolverTypes.h
+++ b/3rdparty/minisat2-070721/core/SolverTypes.h
@@ -117,13 +117,7 @@
         for (int i = 0; i < ps.size(); i++) data[i] = ps[i];
         if (learnt) extra.act = 0; else calcAbstraction(); }

-    // -- use this function instead:
-    template<class V>
-    friend Clause* Clause_new(const V& ps, bool learnt = false) {
-        assert(sizeof(Lit)      == sizeof(uint32_t));
-        assert(sizeof(float)    == sizeof(uint32_t));
-        void* mem = malloc(sizeof(Clause) + sizeof(uint32_t)*(ps.size()));
-        return new (mem) Clause(ps, learnt); }
+    // -- use Clause_new (defined after the class) instead.

     int          size        ()      const   { return size_etc >> 3; }
     void         shrink      (int i)         { assert(i <= size()); size_etc = (((size_etc >> 3) - i) << 3) | (size_etc & 7); }
@@ -146,6 +140,13 @@
     void         strengthen  (Lit p);
 };

+template<class V>
+Clause* Clause_new(const V& ps, bool learnt = false) {
+    assert(sizeof(Lit)      == sizeof(uint32_t));
+    assert(sizeof(float)    == sizeof(uint32_t));
+    void* mem = malloc(sizeof(Clause) + sizeof(uint32_t)*(ps.size()));
+    return new (mem) Clause(ps, learnt); }
+

 /*_________________________________________________________________________________________________
 |
EOF
    # (2) camlmsat: the module `Camlmsat` is only an interface (`camlmsat.mli`, all `external`s), so
    #     no compilation unit implements it and today's OCaml refuses to link `predicates` ("Module
    #     `Camlmsat' is unavailable"). Give it an implementation with the same externals
    #     (camlmsat.ml = camlmsat.mli) and link camlmsat.cm[ox] wherever libcamlmsat.a is linked.
    cp "$dir/3rdparty/camlmsat/camlmsat.mli" "$dir/3rdparty/camlmsat/camlmsat.ml"
    patch -s -l -p1 -d "$dir" <<'EOF'
--- a/3rdparty/camlmsat/Makefile
+++ b/3rdparty/camlmsat/Makefile
@@ -20,7 +20,7 @@
 MINISAT_OBJ=$(MINISAT_DIR)/core/Solver.o


-CAMLMSAT_DEPS=libcamlmsat.a camlmsat.cmi
+CAMLMSAT_DEPS=libcamlmsat.a camlmsat.cmi camlmsat.cmo camlmsat.cmx

 # We always build the C++ libraries optimzed.  If you run into a low-level problem,
 # you might try using CC_OPTS instead.
@@ -50,12 +50,12 @@
 # The output of this program can be piped to the Simplify theorem prover.
 # All the predicates should be valid.
 $(TEST_PREDS_OPT): test_preds.ml predicates.cmi predicates.cmx $(CAMLMSAT_DEPS)
-	$(OCAML_OPT_C) $(OCAML_OPT_C_FLAGS) -cc g++ libcamlmsat.a predicates.cmx test_preds.ml -o $(TEST_PREDS_OPT)
+	$(OCAML_OPT_C) $(OCAML_OPT_C_FLAGS) -cc g++ libcamlmsat.a camlmsat.cmx predicates.cmx test_preds.ml -o $(TEST_PREDS_OPT)

 # The output of this program can be piped to the Simplify theorem prover.
 # All the predicates should be valid.
 $(TEST_PREDS): test_preds.ml predicates.cmi predicates.cmo $(CAMLMSAT_DEPS)
-	$(OCAML_C) $(OCAML_C_FLAGS) -custom  -cc g++ libcamlmsat.a predicates.cmo test_preds.ml -o $(TEST_PREDS)
+	$(OCAML_C) $(OCAML_C_FLAGS) -custom  -cc g++ libcamlmsat.a camlmsat.cmo predicates.cmo test_preds.ml -o $(TEST_PREDS)

 predicates.cmx: predicates.ml predicates.cmi

@@ -65,13 +65,13 @@

 # toplevel for interactive debugging of the predicates API
 $(TEST_TOPLEVEL): predicates.cmi predicates.cmo
-	$(OCAML_MKTOP) -o $(TEST_TOPLEVEL) $(CAML_C_FLAGS)  -custom  -cc g++ libcamlmsat.a predicates.cmo
+	$(OCAML_MKTOP) -o $(TEST_TOPLEVEL) $(CAML_C_FLAGS)  -custom  -cc g++ libcamlmsat.a camlmsat.cmo predicates.cmo

 $(TEST_STUBS_OPT): $(CAMLMSAT_DEPS) test_stubs.ml
-	$(OCAML_OPT_C) $(OCAML_OPT_C_FLAGS) -cc g++ -o $(TEST_STUBS_OPT) libcamlmsat.a test_stubs.ml
+	$(OCAML_OPT_C) $(OCAML_OPT_C_FLAGS) -cc g++ -o $(TEST_STUBS_OPT) libcamlmsat.a camlmsat.cmx test_stubs.ml

 $(TEST_STUBS): $(CAMLMSAT_DEPS) test_stubs.ml
-	$(OCAML_C) $(OCAML_C_FLAGS) -custom  -cc g++ -o $(TEST_STUBS) libcamlmsat.a test_stubs.ml
+	$(OCAML_C) $(OCAML_C_FLAGS) -custom  -cc g++ -o $(TEST_STUBS) libcamlmsat.a camlmsat.cmo test_stubs.ml

 libcamlmsat.a: camlmsat_stubs.o $(MINISAT_OBJ)
 	ar cr libcamlmsat.a camlmsat_stubs.o $(MINISAT_OBJ)
--- a/config/Makefile
+++ b/config/Makefile
@@ -20,8 +20,8 @@
 OCAML_LIBS= bigarray.cma str.cma unix.cma
 OCAML_OPT_LIBS= bigarray.cmxa str.cmxa unix.cmxa

-OCAMLMSAT_DEPS=$(CAMLMSAT_DIR)/libcamlmsat.a $(CAMLMSAT_DIR)/predicates.cmo
-OCAMLMSAT_OPT_DEPS=$(CAMLMSAT_DIR)/libcamlmsat.a $(CAMLMSAT_DIR)/predicates.cmx
+OCAMLMSAT_DEPS=$(CAMLMSAT_DIR)/libcamlmsat.a $(CAMLMSAT_DIR)/camlmsat.cmo $(CAMLMSAT_DIR)/predicates.cmo
+OCAMLMSAT_OPT_DEPS=$(CAMLMSAT_DIR)/libcamlmsat.a $(CAMLMSAT_DIR)/camlmsat.cmx $(CAMLMSAT_DIR)/predicates.cmx

 #OCAMLENV_LIBS=$(CAMLENV_DIR)/fileutils.cma $(CAMLENV_DIR)/camomile.cma $(CAMLENV_DIR)/gettextBase.cma $(CAMLENV_DIR)/gettextExtension.cma $(CAMLENV_DIR)/gettextCamomile.cma
 #OCAMLENV_OPT_LIBS=$(CAMLENV_DIR)/fileutils.cmxa $(CAMLENV_DIR)/camomile.cmxa $(CAMLENV_DIR)/gettextBase.cmxa $(CAMLENV_DIR)/gettextExtension.cmxa $(CAMLENV_DIR)/gettextCamomile.cmxa
--- a/config/c_wrapper/Makefile
+++ b/config/c_wrapper/Makefile
@@ -21,10 +21,10 @@

 exe: mlmain.cmx
 	gcc -I $(OCAML_LIBDIR) -c main.c
-	$(OCAML_OPT_C) str.cmxa unix.cmxa $(THIRD_PARTY)/camlmsat/libcamlmsat.a $(THIRD_PARTY)/camlmsat/predicates.cmx  main.o $(CONFIG)/config.cmxa mlmain.cmx -cclib -L$(CONFIG)/ -cc g++ -o $(EXE_FILE)
+	$(OCAML_OPT_C) str.cmxa unix.cmxa $(THIRD_PARTY)/camlmsat/libcamlmsat.a $(THIRD_PARTY)/camlmsat/camlmsat.cmx $(THIRD_PARTY)/camlmsat/predicates.cmx  main.o $(CONFIG)/config.cmxa mlmain.cmx -cclib -L$(CONFIG)/ -cc g++ -o $(EXE_FILE)

 config.o: mlmain.cmx
-	$(OCAML_OPT_C) str.cmxa unix.cmxa $(THIRD_PARTY)/camlmsat/libcamlmsat.a $(THIRD_PARTY)/camlmsat/predicates.cmx  $(CONFIG)/cfunctions.o $(CONFIG)/config.cmxa mlmain.cmx -cclib -L$(CONFIG)/ -cc g++ -verbose -output-obj -o config.o
+	$(OCAML_OPT_C) str.cmxa unix.cmxa $(THIRD_PARTY)/camlmsat/libcamlmsat.a $(THIRD_PARTY)/camlmsat/camlmsat.cmx $(THIRD_PARTY)/camlmsat/predicates.cmx  $(CONFIG)/cfunctions.o $(CONFIG)/config.cmxa mlmain.cmx -cclib -L$(CONFIG)/ -cc g++ -verbose -output-obj -o config.o

 mlmain.cmx: mlmain.ml
 	$(OCAML_OPT_C) -c -I $(CONFIG) mlmain.ml
EOF
    # (3) misc.ml: `append_to_file` passes a string to `Unix.write`, which takes bytes since strings
    #     became immutable (OCaml 4.06 made -safe-string the default). `Unix.write_substring` is the
    #     same call for a string.
    patch -s -l -p1 -d "$dir" <<'EOF'
--- a/config/misc.ml
+++ b/config/misc.ml
@@ -701,7 +701,7 @@
 let append_to_file fname s =
   ignore (update_act fname);
   let oc = Unix.openfile fname  [Unix.O_WRONLY; Unix.O_APPEND; Unix.O_CREAT] 420  in
-  ignore (Unix.write oc s 0 ((String.length s)-1) );
+  ignore (Unix.write_substring oc s 0 ((String.length s)-1) );
   Unix.close oc

 (* ambitious -- take a text file and return a list of lines that is the file *)
EOF
}

# Prints the path of the built configurator, building it when the cache has none for these sources.
build_config_engine() {
    local key build out
    # The cache key: the config engine's sources and the patches.
    key=$( (cd "$ENGAGE_SRC" && find config_src buildutils/get_platform.sh -type f -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum; declare -f patch_config_src) | sha256sum | cut -c1-16)
    out="$CACHE/configurator-$key"
    if [[ -x $out ]]; then
        log "config engine: cached ($out)"
        printf '%s\n' "$out"
        return
    fi
    log "config engine: building from $ENGAGE_SRC/config_src (patched copy, log in $CACHE/config-build.log)"
    build="$CACHE/config-build"
    rm -rf "$build"
    mkdir -p "$build"
    cp -r "$ENGAGE_SRC/config_src" "$ENGAGE_SRC/buildutils" "$build/"
    patch_config_src "$build/config_src" || die "the config engine patches do not apply to $ENGAGE_SRC/config_src" \
        "this script's patches were written against cash2one/engage; update them for this checkout"
    if ! (cd "$build/config_src" && ENGAGE_CODE_HOME="$build" make config) >"$CACHE/config-build.log" 2>&1; then
        tail -n 30 "$CACHE/config-build.log" >&2
        die "building Engage's config engine failed (log: $CACHE/config-build.log)" \
            "install the Debian packages ocaml ocaml-findlib g++ make"
    fi
    cp "$build/config_src/config/c_wrapper/configurator" "$out.partial"
    chmod 755 "$out.partial"
    mv "$out.partial" "$out"
    rm -rf "$build"
    # Only the newest build is kept.
    find "$CACHE" -maxdepth 1 -name 'configurator-*' ! -path "$out" -delete
    printf '%s\n' "$out"
}

# ---------------------------------------------------------------------------------------------
# Step 2: the package cache and the base Python 2.7 environment.

fetch_packages() {
    local pkgs="$CACHE/sw_packages"
    mkdir -p "$pkgs"
    local want=("virtualenv-$VIRTUALENV_VERSION.tar.gz" "nose-$NOSE_VERSION.tar.gz" "pycrypto-$PYCRYPTO_VERSION.tar.gz")
    local missing=0 f
    for f in "${want[@]}"; do [[ -f $pkgs/$f ]] || missing=1; done
    if [[ $missing == 1 ]]; then
        # The only network access: sources from PyPI, into the cache, once.
        log "package cache: downloading virtualenv, nose, pycrypto from PyPI into $pkgs"
        "$PYTHON27" -m pip download --disable-pip-version-check --no-deps --no-binary :all: -d "$pkgs" \
            "virtualenv==$VIRTUALENV_VERSION" "nose==$NOSE_VERSION" "pycrypto==$PYCRYPTO_VERSION" >&2 \
            || die "downloading the bootstrap packages from PyPI failed" \
                "run once with network access, or put ${want[*]} into $pkgs"
    fi
    for f in "${want[@]}"; do [[ -f $pkgs/$f ]] || die "$pkgs/$f is missing after the download"; done
}

# A Python 2.7 environment with `virtualenv` beside `python`: bootstrap.py looks for virtualenv in
# the directory of the Python it is given (-x), and the base Python must stay untouched.
make_base_python() {
    local base="$CACHE/py27"
    if [[ -x $base/bin/python && -x $base/bin/virtualenv ]]; then
        return
    fi
    log "base Python: virtualenv $VIRTUALENV_VERSION environment at $base"
    local unpack="$CACHE/virtualenv-src"
    rm -rf "$unpack" "$base"
    mkdir -p "$unpack"
    tar -xzf "$CACHE/sw_packages/virtualenv-$VIRTUALENV_VERSION.tar.gz" -C "$unpack"
    "$PYTHON27" "$unpack/virtualenv-$VIRTUALENV_VERSION/virtualenv.py" --no-download "$base" >&2
    "$base/bin/pip" install --disable-pip-version-check --no-index --no-deps --no-build-isolation -q \
        "$CACHE/sw_packages/virtualenv-$VIRTUALENV_VERSION.tar.gz" >&2
    rm -rf "$unpack"
}

# Writes the sources of the engage_utils stand-in into $1 (a package directory is made there) and
# packs them as $2/engage_utils-1.0.tar.gz, the file name bootstrap.py looks for.
#
# `engage_utils` (github.com/genforma/engage-utils) was never published to a registry. This
# stand-in provides only the names Engage's engine, its base drivers and our drivers import,
# written from how Engage calls them; names Engage uses elsewhere (other drivers) are absent, so a
# code path needing them fails with ImportError/AttributeError naming them rather than silently.
make_engage_utils() {
    local src=$1/engage_utils-1.0 dest=$2
    rm -rf "$src"
    mkdir -p "$src/engage_utils"
    cat >"$src/setup.py" <<'EOF'
from distutils.core import setup
setup(name="engage_utils", version="1.0", packages=["engage_utils"],
      description="Stand-in for genforma's unpublished engage_utils (ci/engage-real.sh)")
EOF
    cat >"$src/engage_utils/__init__.py" <<'EOF'
"""Stand-in for genforma's engage_utils, generated by Datablox's ci/engage-real.sh."""
EOF
    cat >"$src/engage_utils/versions.py" <<'EOF'
def compare_versions(v1, v2):
    """-1 if v1 > v2, 0 if equal, 1 if v1 < v2 (dotted numeric versions), as Engage's pip driver reads it."""
    def norm(v):
        return [int(p) if p.isdigit() else p for p in str(v).split(".")]
    a, b = norm(v1), norm(v2)
    if a > b:
        return -1
    if a < b:
        return 1
    return 0
EOF
    cat >"$src/engage_utils/system_info.py" <<'EOF'
"""Host facts for Engage: which OS resource this machine is. Like the original, the Linux
distribution is read from /etc/lsb-release (DISTRIB_ID, DISTRIB_RELEASE)."""
import getpass
import os
import platform as _platform
import socket

from engage.utils.system_info_bootstrap import get_platform  # noqa: F401 (re-exported)

# The OS resources (keys) of Engage's metadata this stand-in can name.
default_os_choices = ["ubuntu-linux 12.04", "ubuntu-linux 14.04", "mac-osx 10.6"]


def _lsb_release(path="/etc/lsb-release"):
    facts = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    facts[k] = v.strip('"')
    return facts


def get_machine_info(os_choices):
    info = {"hostname": socket.gethostname(), "username": getpass.getuser(),
            "private_ip": None}
    if _platform.system() == "Darwin":
        os_key = {"name": "mac-osx", "version": ".".join(_platform.mac_ver()[0].split(".")[:2])}
    else:
        lsb = _lsb_release()
        if lsb.get("DISTRIB_ID") == "Ubuntu":
            os_key = {"name": "ubuntu-linux", "version": lsb.get("DISTRIB_RELEASE")}
        else:
            os_key = None
    if os_key and "%s %s" % (os_key["name"], os_key["version"]) in os_choices:
        info["os"] = os_key
    return info


def get_target_machine_resource(res_id, hostname, username, sudo_password_key, os_key, private_ip):
    home = os.path.expanduser("~")
    return {
        "id": res_id,
        "key": dict(os_key),
        "properties": {"installed": True, "use_as_install_target": True},
        "config_port": {
            "cpu_arch": "x86_64" if _platform.machine() == "x86_64" else "x86",
            "genforma_home": os.path.join(home, "apps"),
            "hostname": hostname,
            "log_directory": os.path.join(home, "apps", "log"),
            "os_user_name": username,
            "private_ip": private_ip,
            "sudo_password": sudo_password_key,
        },
    }
EOF
    cat >"$src/engage_utils/resource_utils.py" <<'EOF'
"""Resource definitions as Engage's preprocessing step writes them for the config engine."""
import json


class ResourceDef(object):
    def __init__(self, json_dict):
        self.json_dict = json_dict

    @staticmethod
    def from_json(json_dict):
        if "key" not in json_dict:
            raise ValueError("resource definition without a key: %r" % (json_dict,))
        return ResourceDef(json_dict)


def pp_resource_defs(resource_defs, version):
    return json.dumps({"resource_def_version": version,
                       "resource_definitions": [r.json_dict for r in resource_defs]},
                      indent=2, sort_keys=True)
EOF
    cat >"$src/engage_utils/process.py" <<'EOF'
"""Running programs and servers for Engage (the names its engine and base drivers use)."""
import errno
import os
import shutil
import signal
import subprocess
import time

# Engage checks this before actions that need root: None/False means no sudo password is needed.
SUDO_PASSWORD_REQUIRED = False if os.geteuid() == 0 else True


class SudoError(Exception):
    pass


class SudoBadRc(SudoError):
    pass


class ServerStartupError(Exception):
    pass


class ServerStopTimeout(Exception):
    pass


def is_running_as_root():
    return os.geteuid() == 0


def run_and_log_program(program_and_args, env_mapping, logger, cwd=None, input=None,
                        hide_input=False, hide_command=False, hide_environ=False,
                        allow_broken_pipe=False):
    if not hide_command:
        logger.debug("run %s (cwd %s)" % (" ".join(program_and_args), cwd))
    proc = subprocess.Popen(program_and_args, env=env_mapping, cwd=cwd,
                            stdin=subprocess.PIPE if input is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate(input)[0]
    for line in (out or "").splitlines():
        logger.debug("[%s] %s" % (os.path.basename(program_and_args[0]), line))
    return proc.returncode


def system(command, logger, log_output_as_info=False, cwd=None, env=None):
    logger.debug(command)
    proc = subprocess.Popen(command, shell=True, cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate()[0]
    for line in (out or "").splitlines():
        (logger.info if log_output_as_info else logger.debug)(line)
    return proc.returncode


def run_program_and_scan_results(program_and_args, re_map, logger, env=None, cwd=None,
                                 input=None, log_output=False, allow_broken_pipe=False,
                                 return_mos=False, shell=False):
    proc = subprocess.Popen(program_and_args, env=env, cwd=cwd, shell=shell,
                            stdin=subprocess.PIPE if input is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate(input)[0] or ""
    results = {}
    for name, regexp in re_map.items():
        mo = None
        for line in out.splitlines():
            mo = regexp.search(line)
            if mo:
                break
        results[name] = mo if return_mos else (mo is not None)
    return (proc.returncode, results)


def _as_root(program_and_args, logger, cwd=None, env=None, input=None):
    if not is_running_as_root():
        raise SudoError("engage_utils stand-in: %s needs root; run ci/engage-real.sh as root"
                        % " ".join(program_and_args))
    rc = run_and_log_program(program_and_args, env, logger, cwd=cwd, input=input)
    if rc != 0:
        raise SudoBadRc("%s exited with %d" % (" ".join(program_and_args), rc))
    return rc


def run_sudo_program(program_and_args, sudo_password, logger, cwd=None, env={}, user="root"):
    return _as_root(program_and_args, logger, cwd=cwd, env=env or None)


sudo_run_program = run_sudo_program


def run_sudo_program_and_scan_results(program_and_args, re_map, logger, sudo_password,
                                      env={}, cwd=None, log_output=False, return_mos=False):
    return run_program_and_scan_results(program_and_args, re_map, logger, env=env or None,
                                        cwd=cwd, return_mos=return_mos)


def sudo_mkdir(dir_path, sudo_password, logger, create_intermediate_dirs=False):
    _as_root(["/bin/mkdir"] + (["-p"] if create_intermediate_dirs else []) + [dir_path], logger)


def sudo_rm(path, sudo_password, logger):
    _as_root(["/bin/rm", "-rf", path], logger)


def sudo_copy(copy_args, sudo_password, logger, cwd=None):
    _as_root(["/bin/cp"] + list(copy_args), logger, cwd=cwd)


def sudo_chown(user, targets, sudo_password, logger, recursive=False):
    _as_root(["/bin/chown"] + (["-R"] if recursive else []) + [user] + list(targets), logger)


def sudo_chgrp(group_name, targets, sudo_password, logger, recursive=False):
    _as_root(["/bin/chgrp"] + (["-R"] if recursive else []) + [group_name] + list(targets), logger)


def sudo_chmod(mode, targets, sudo_password, logger, recursive=False):
    _as_root(["/bin/chmod"] + (["-R"] if recursive else []) + ["%o" % mode if isinstance(mode, int) else mode]
             + list(targets), logger)


def sudo_set_file_permissions(path, user_id, group_id, mode, logger, sudo_password):
    os.chown(path, user_id, group_id)
    os.chmod(path, mode)


def sudo_cat_file(path, logger, sudo_password):
    with open(path) as f:
        return f.read()


def get_pid_from_file(pidfile, resource_id=None, logger=None):
    if not os.path.exists(pidfile):
        return None
    with open(pidfile) as f:
        text = f.read().strip()
    return int(text) if text.isdigit() else None


def is_process_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def check_server_status(pidfile, logger=None, resource_id=None, remove_pidfile_if_dead_proc=False):
    pid = get_pid_from_file(pidfile)
    if pid is not None and is_process_alive(pid):
        return pid
    if pid is not None and remove_pidfile_if_dead_proc:
        os.remove(pidfile)
    return None


sudo_check_server_status = check_server_status


def run_server(program_and_args, env_mapping, logfile, logger, pidfile_name=None, cwd="/"):
    out = open(logfile, "a")
    proc = subprocess.Popen(program_and_args, env=env_mapping or None, cwd=cwd, stdout=out,
                            stderr=subprocess.STDOUT, close_fds=True, preexec_fn=os.setsid)
    if pidfile_name:
        with open(pidfile_name, "w") as f:
            f.write("%d\n" % proc.pid)
    return proc.pid


def stop_server_process(pidfile, logger, resource_id, timeout_tries=10, force_stop=False):
    pid = get_pid_from_file(pidfile)
    if pid is None:
        return None
    os.kill(pid, signal.SIGKILL if force_stop else signal.SIGTERM)
    for _ in range(timeout_tries):
        if not is_process_alive(pid):
            os.remove(pidfile)
            return pid
        time.sleep(1.0)
    raise ServerStopTimeout("%s: pid %d did not stop" % (resource_id, pid))


sudo_stop_server_process = stop_server_process


def find_matching_processes(process_pattern_list, exclude_pattern=None, treat_patterns_as_literals=True):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name) as f:
                cmdline = f.read().replace("\0", " ")
        except IOError:
            continue
        if any(p in cmdline for p in process_pattern_list) and \
                not (exclude_pattern and exclude_pattern in cmdline):
            found.append((int(name), cmdline))
    return found
EOF
    cat >"$src/engage_utils/pw_repository.py" <<'EOF'
"""Engage's password repository. The stand-in keeps values in memory and saves them as JSON
(not encrypted: the check's deployments carry no secrets)."""
import json
import random
import string

REPOSITORY_FILE_NAME = "pw_repository"
SALT_FILE_NAME = "pw_salt"


class PasswordRepository(object):
    def __init__(self, key, data=None, salt=None):
        self.key = key
        self.data = dict(data or {})

    def add_key(self, k, v):
        self.data[k] = v

    def has_key(self, k):
        return k in self.data

    def get_value(self, k):
        return self.data[k]

    def items(self):
        return self.data.items()

    def save_to_file(self, filename, salt_filename=None):
        with open(filename, "w") as f:
            json.dump(self.data, f)
        if salt_filename:
            open(salt_filename, "w").close()

    @staticmethod
    def load_from_file(filename, salt_filename, key):
        with open(filename) as f:
            return PasswordRepository(key, json.load(f))


def gen_password(length, chars=string.ascii_letters + string.digits):
    rng = random.SystemRandom()
    return "".join(rng.choice(chars) for _ in range(length))


def encrypt_object(obj, key):
    return json.dumps(obj)


def decrypt_object(data, key):
    return json.loads(data)
EOF
    cat >"$src/engage_utils/digraph.py" <<'EOF'
"""The machine-dependency graph of Engage's multi-node install plans (not used on one node)."""


class digraph(object):
    def __init__(self):
        self.nodes = []
        self.edges = set()

    def add_node(self, n):
        if n not in self.nodes:
            self.nodes.append(n)

    def get_node(self, n):
        return n

    def add_edge(self, a, b):
        self.edges.add((a, b))

    def print_graph(self):
        print("digraph: nodes %s edges %s" % (self.nodes, sorted(self.edges)))

    def toposort(self):
        order, seen = [], set()

        def visit(n):
            if n in seen:
                return
            seen.add(n)
            for (a, b) in self.edges:
                if b == n:
                    visit(a)
            order.append(n)
        for n in self.nodes:
            visit(n)
        return order
EOF
    cat >"$src/engage_utils/daemonize.py" <<'EOF'
"""Imported by engage.utils.daemonize; nothing on the deployment path calls it."""
EOF
    cat >"$src/engage_utils/pkgmgr.py" <<'EOF'
"""engage_utils.pkgmgr parses new-style `package` entries inside a resource; none of our
resources has one, so the stand-in refuses them by name."""


class Package(object):
    @staticmethod
    def from_json(package_json):
        raise NotImplementedError("engage_utils stand-in: new-style package entries are not supported: %r"
                                  % (package_json,))
EOF
    (cd "$src" && "$PYTHON27" setup.py -q sdist --formats=gztar -d "$dest" >/dev/null 2>&1)
    [[ -f $dest/engage_utils-1.0.tar.gz ]] || die "packing the engage_utils stand-in failed"
}

# ---------------------------------------------------------------------------------------------
# Steps 3-5 run inside a private mount namespace (see inner_main).

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")

main() {
    local keep=0 work="" only=() args=()
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage; exit 0 ;;
        --keep) keep=1 ;;
        --work) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; work=$2; shift ;;
        --only) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; only+=("$2"); shift ;;
        -*) printf 'error: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
        *) args+=("$1") ;;
        esac
        shift
    done
    [[ ${#args[@]} -ge 1 && ${#args[@]} -le 2 ]] || { usage >&2; exit 2; }
    local repo
    repo=$(cd "$(dirname "$SCRIPT")/.." && pwd)
    ENGAGE_SRC=$(readlink -f "${args[0]}")
    local dist=${args[1]:-$repo/target/dist}
    [[ -f $ENGAGE_SRC/bootstrap.py && -d $ENGAGE_SRC/config_src && -f $ENGAGE_SRC/install_extension.py ]] \
        || die "$ENGAGE_SRC is not an Engage source checkout (no bootstrap.py, install_extension.py, config_src/)" \
            "git clone https://github.com/genforma/engage (or cash2one/engage) and pass its path"
    [[ -f $dist/datablox/version.txt ]] || die "$dist/datablox/version.txt not found" \
        "run \`cargo xtask dist\` first, or pass the directory it wrote as DIST"
    dist=$(readlink -f "$dist")
    [[ $(id -u) == 0 ]] || die "must run as root (Engage runs in a private mount namespace)" "run with sudo"
    local tool
    for tool in ocamlopt ocamlc ocamllex ocamlyacc g++ gcc make patch unshare mount tar sha256sum; do
        command -v "$tool" >/dev/null || die "\`$tool\` not found" "apt-get install ocaml ocaml-findlib g++ make patch util-linux"
    done
    [[ -x $PYTHON27 ]] || die "Python 2.7 not found at $PYTHON27" "set PYTHON27 to a Python 2.7 interpreter"

    work=$(mkdir -p "${work:-$repo/target/engage-real}" && cd "${work:-$repo/target/engage-real}" && pwd)
    CACHE=$work/cache
    mkdir -p "$CACHE"

    local configurator
    configurator=$(build_config_engine)
    fetch_packages
    make_base_python

    # The run directory: a copy of Engage's sources (install_extension.py writes into it), the
    # deployment home, the logs.
    local run
    run=$(mktemp -d "$work/run.XXXXXX")
    log "run directory: $run"
    mkdir -p "$run/engage/bin" "$run/engage/sw_packages"
    (cd "$ENGAGE_SRC" && tar -cf - --exclude=./config_src --exclude=./sw_packages --exclude=./bin . ) \
        | tar -xf - -C "$run/engage"
    cp "$configurator" "$run/engage/bin/configurator-linux64"
    cp "$CACHE/sw_packages/nose-$NOSE_VERSION.tar.gz" "$CACHE/sw_packages/pycrypto-$PYCRYPTO_VERSION.tar.gz" \
        "$run/engage/sw_packages/"
    make_engage_utils "$run/engage-utils-src" "$run/engage/sw_packages"

    local rc=0
    ENGAGE_SRC=$ENGAGE_SRC ENGAGE_REAL_DIST=$dist ENGAGE_REAL_ONLY="${only[*]:-}" ENGAGE_REAL_BASE_PYTHON="$CACHE/py27/bin/python" \
        unshare -m -- bash "$SCRIPT" --inner "$run" || rc=$?
    if [[ $keep == 1 ]]; then
        log "kept $run"
    else
        rm -rf "$run"
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Inside the private mount namespace.

# Engage (its engage_utils.system_info) names the host's OS resource from /etc/lsb-release, and
# knows Ubuntu and Mac OS X, not Debian. In this process's own mount namespace (unshare -m, made
# private so nothing propagates back), an overlay on /etc adds an lsb-release saying Ubuntu 14.04.
# The machine's /etc is not modified: the overlay's upper layer lives in the run directory and
# disappears with the namespace.
present_host_as_ubuntu() {
    local run=$1
    mount --make-rprivate /
    mkdir -p "$run/etc-upper" "$run/etc-work"
    printf 'DISTRIB_ID=%s\nDISTRIB_RELEASE=%s\nDISTRIB_DESCRIPTION="presented by ci/engage-real.sh"\n' \
        "$PRESENTED_DISTRIB_ID" "$PRESENTED_DISTRIB_RELEASE" >"$run/etc-upper/lsb-release"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$run/etc-upper,workdir=$run/etc-work" /etc
}

# JSON helpers run with the system's Python 3.
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

# The install spec for block KEY_NAME KEY_VERSION: the host and the block, naming only its key.
block_spec() {
    python3 - "$@" <<'EOF'
import json, sys
name, version, out = sys.argv[1:]
host = {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}}
block = {"id": name, "key": {"name": name, "version": version},
         "inside": {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}}}
with open(out, "w") as f:
    json.dump([host, block], f, indent=2)
EOF
}

# Engage's own words for a failed deployment: config/config_error.json, log/user_error.json and
# the last lines of the deployer's output that say ERROR or show the exception.
report_failure() {
    local home=$1 out=$2
    python3 - "$home" "$out.reason" <<'EOF'
import json, os, sys
home, reason_file = sys.argv[1:]
reasons = []
for rel in ("config/config_error.json", "log/user_error.json"):
    path = os.path.join(home, rel)
    if not os.path.isfile(path):
        continue
    text = open(path).read()
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
# The summary line gives the first of: the config engine's error, the deployer's developer message.
reasons.sort(key=lambda r: "install script" in r)
with open(reason_file, "w") as f:
    f.write((reasons[0] if reasons else "no error file; see the deployer log")[:200])
EOF
    printf '    deployer log (%s), last ERROR lines:\n' "${out##*/}"
    grep -E '^(ERROR|CRITICAL)|\[ERROR\]|Error:|Exception:' "$out" | grep -v '^  File ' | tail -n 4 | cut -c1-400 \
        | sed 's/^/      /' || true
}

inner_main() {
    local run=$1
    local dist=$ENGAGE_REAL_DIST base_python=$ENGAGE_REAL_BASE_PYTHON
    present_host_as_ubuntu "$run"
    local engage=$run/engage home=$run/home logs=$run/logs
    mkdir -p "$logs"

    log "install_extension.py $dist/datablox"
    if ! (cd "$engage" && "$base_python" install_extension.py "$dist/datablox") >"$logs/install_extension.log" 2>&1; then
        cat "$logs/install_extension.log" >&2
        printf 'install_extension FAILED\n'
        return 1
    fi

    log "bootstrap.py --never-download $home (log: $logs/bootstrap.log)"
    if ! (cd "$engage" && "$base_python" bootstrap.py --never-download -x "$base_python" "$home") \
        >"$logs/bootstrap.log" 2>&1; then
        tail -n 30 "$logs/bootstrap.log" >&2
        printf 'bootstrap FAILED\n'
        return 1
    fi
    # Every deployment starts from this bootstrapped home, restored at the same path (virtualenvs
    # hold absolute paths).
    tar -cf "$run/home.tar" -C "$run" home

    # What to deploy: the caretaker's spec, then every block of the extension (a driver directory
    # whose resources.json defines a resource inside a host).
    local -a names=() specs=() versions=()
    names+=("caretaker")
    versions+=("1.0")
    specs+=("$dist/datablox/metadata/caretaker_install_spec.json")
    local name version
    while IFS=' ' read -r name version; do
        [[ -n $name ]] || continue
        block_spec "$name" "$version" "$run/spec-$name.json"
        names+=("$name")
        versions+=("$version")
        specs+=("$run/spec-$name.json")
    done < <(python3 - "$dist/datablox/drivers" <<'EOF'
import json, os, sys
drivers = sys.argv[1]
for d in sorted(os.listdir(drivers)):
    rj = os.path.join(drivers, d, "resources.json")
    if not os.path.isfile(rj):
        continue
    defs = json.load(open(rj))
    defs = defs.get("resource_definitions", defs) if isinstance(defs, dict) else defs
    for r in defs:
        name = r["key"]["name"]
        # Blocks: what the framework's BLOXPATH feeds (the caretaker has its own spec).
        env = json.dumps(r.get("environment", {}))
        if name != "datablox-caretaker" and "datablox-framework" in env:
            print(name, r["key"]["version"])
EOF
    )

    local i failed=0 total=0 results=()

    # The installer's configuration, as Engage's `install` command reads it (the deployer does not):
    # engine/engage_file_layout.py get_installer_config -> engine/installer_config.py
    # parse_installer_config, then get_install_spec_template_file for each install spec option.
    local ic_out=$logs/installer-config.log
    if [[ -z ${ENGAGE_REAL_ONLY:-} || " $ENGAGE_REAL_ONLY " == *" installer-config "* ]]; then
        total=$((total + 1))
        if (cd "$home" && "$home/engage/bin/python" - <<'EOF') >"$ic_out" 2>&1; then
from engage.engine.engage_file_layout import get_engine_layout_mgr
efl = get_engine_layout_mgr("datablox")
config = efl.get_installer_config()
for i in range(len(config.install_spec_options)):
    print(efl.get_install_spec_template_file(i))
EOF
            results+=("OK      installer-config: $(paste -sd' ' "$ic_out" | sed "s#$home/##g")")
        else
            failed=$((failed + 1))
            results+=("FAILED  installer-config: $(grep -v '^\s' "$ic_out" | tail -n 1 | sed "s#$home/##g" | cut -c1-300)")
        fi
    fi
    for i in "${!names[@]}"; do
        name=${names[$i]}
        if [[ -n ${ENGAGE_REAL_ONLY:-} && " $ENGAGE_REAL_ONLY " != *" $name "* ]]; then
            continue
        fi
        total=$((total + 1))
        rm -rf "$home"
        tar -xf "$run/home.tar" -C "$run"
        local out=$logs/deploy-$name.log
        log "deployer $name"
        local drc=0
        # --mgt-backends print: Engage registers every installed service with its management
        # backends (engine/mgt_registration.py register_with_mgt_backends), asking each service's
        # driver for get_pid_file_path(); the `print` backend prints what a process monitor gets.
        (cd "$home" && "$home/engage/bin/deployer" -d "$home" -g --mgt-backends print "${specs[$i]}") >"$out" 2>&1 || drc=$?
        local installed="$home/config/installed_resources.json"
        local monitor_note
        monitor_note=$(python3 - "$out" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
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
print("".join(notes))
EOF
        )
        # Services the deployment started (the caretaker) are stopped with Engage's own `svcctl
        # stop` (every resource, in reverse install order); a process still running under the home
        # afterwards is a failure of the driver's stop, and is killed so the next deployment starts clean.
        local stop_note=""
        if [[ -f $installed ]]; then
            if ! (cd "$home" && "$home/engage/bin/svcctl" -d "$home" stop) >"$logs/svcctl-stop-$name.log" 2>&1; then
                stop_note="; svcctl stop failed (log ${logs#"$run"/}/svcctl-stop-$name.log)"
            fi
        fi
        local pid leftover=()
        for pid in $(pgrep -f -- "$home/" || true); do
            leftover+=("$pid")
            kill -KILL "$pid" 2>/dev/null || true
        done
        if [[ ${#leftover[@]} -gt 0 ]]; then
            stop_note="$stop_note; still running after svcctl stop: pid ${leftover[*]} (killed)"
        fi
        stop_note="$stop_note$monitor_note"
        if [[ $drc == 0 && -f $installed && -z $stop_note ]]; then
            results+=("OK      $name: installed $(python3 -c 'import json,sys; print(", ".join(r["id"] for r in json.load(open(sys.argv[1]))))' "$installed")")
        else
            failed=$((failed + 1))
            printf -- '--- %s: FAILED (deployer exit %s, log %s)\n' "$name" "$drc" "${out#"$run"/}"
            if [[ $drc == 0 && -f $installed ]]; then
                printf '    deployed, but%s\n' "${stop_note#;}"
                results+=("FAILED  $name: deployed, but${stop_note#;}")
            else
                report_failure "$home" "$out"
                results+=("FAILED  $name: $(cat "$out.reason" 2>/dev/null)")
            fi
        fi
        cp -r "$home/log" "$logs/home-log-$name" 2>/dev/null || true
    done

    # The node scenario: what the caretaker does on a node. One home: Engage deploys the caretaker,
    # then the caretaker's own code (datablox_engage_adapter.install_block, as installed in
    # <home>/python) deploys each block on demand into that same home, additively.
    if [[ -z ${ENGAGE_REAL_ONLY:-} || " $ENGAGE_REAL_ONLY " == *" node "* ]]; then
        rm -rf "$home"
        tar -xf "$run/home.tar" -C "$run"
        total=$((total + 1))
        local node_out=$logs/node-caretaker.log drc=0
        log "node: deployer caretaker, then the adapter deploys each block into the same home"
        (cd "$home" && "$home/engage/bin/deployer" -d "$home" -g "$dist/datablox/metadata/caretaker_install_spec.json") \
            >"$node_out" 2>&1 || drc=$?
        if [[ $drc != 0 ]]; then
            failed=$((failed + 1))
            printf -- '--- node: caretaker FAILED (deployer exit %s, log %s)\n' "$drc" "${node_out#"$run"/}"
            report_failure "$home" "$node_out"
            results+=("FAILED  node: caretaker: $(cat "$node_out.reason" 2>/dev/null)")
        else
            results+=("OK      node: caretaker")
            local j
            for j in "${!names[@]}"; do
                name=${names[$j]}
                [[ $name != caretaker ]] || continue
                total=$((total + 1))
                local block_out=$logs/node-$name.log
                if (cd "$home" && python3 - "$home" "$name" "${versions[$j]}" <<'EOF') >"$block_out" 2>&1; then
import sys
home, name, version = sys.argv[1:]
sys.path.insert(0, home + "/python")
from datablox_engage_adapter.deploy import DeployError, install_block
try:
    print(install_block(home, name, version)["status"])
except DeployError as error:
    print(error)
    sys.exit(1)
EOF
                    results+=("OK      node: $name: adapter install_block: $(tail -n 1 "$block_out")")
                else
                    failed=$((failed + 1))
                    printf -- '--- node: %s FAILED (log %s)\n' "$name" "${block_out#"$run"/}"
                    report_failure "$home" "$block_out"
                    results+=("FAILED  node: $name: $(grep -v '^\s*$' "$block_out" | head -n 1 | cut -c1-200) / $(cat "$block_out.reason" 2>/dev/null)")
                fi
            done
            (cd "$home" && "$home/engage/bin/svcctl" -d "$home" stop) >"$logs/node-svcctl-stop.log" 2>&1 || true
            cp "$home/config/installed_resources.json" "$logs/node-installed_resources.json" 2>/dev/null || true
            # The node's record: config/installed_resources.json must list the caretaker and every block.
            total=$((total + 1))
            local missing
            missing=$(python3 - "$home/config/installed_resources.json" "${names[@]}" <<'EOF'
import json, sys
path, wanted = sys.argv[1], sys.argv[2:]
try:
    keys = set(r["key"]["name"] for r in json.load(open(path)))
except (IOError, OSError, ValueError) as error:
    print("cannot read: %s" % error)
    sys.exit(0)
keys |= set("caretaker" for k in list(keys) if k == "datablox-caretaker")
print(" ".join(w for w in wanted if w not in keys))
EOF
            )
            if [[ -z $missing ]]; then
                results+=("OK      node: config/installed_resources.json records the caretaker and all $((${#names[@]} - 1)) blocks")
            else
                failed=$((failed + 1))
                results+=("FAILED  node: config/installed_resources.json lacks: $missing")
            fi
        fi
        local pid
        for pid in $(pgrep -f -- "$home/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    fi

    printf '\n=== engage-real summary (%s) ===\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf 'checked: config engine built from %s with 3 patches; bootstrap.py --never-download;\n' "$ENGAGE_SRC"
    printf '         install_extension.py %s/datablox; installer_config.json read by Engage'"'"'s file layout;\n' "$dist"
    printf '         deployer -g on each spec (caretaker_install_spec.json; per block: its key only) into a fresh\n'
    printf '         copy of the bootstrapped home; node: the caretaker deployed, then each block deployed into\n'
    printf '         that home by the caretaker'"'"'s own adapter (install_block), as on a node\n'
    printf '         OK = deployer exit 0, config/installed_resources.json written (ids listed), and\n'
    printf '              every service has a pid file for Engage'"'"'s process monitor (--mgt-backends print),\n'
    printf '              and svcctl stop stopped what it started (no process left under the home)\n'
    # Paths under the run directory would differ on every run: print them as HOME/...
    printf '%s\n' "${results[@]}" | sed -e "s#$home#HOME#g" -e 's/ (spec kept at [^)]*)//' -e 's/ *$//'
    printf '%d checks, %d OK, %d FAILED\n' "$total" "$((total - failed))" "$failed"
    [[ $failed == 0 ]]
}

if [[ ${1:-} == --inner ]]; then
    shift
    inner_main "$@"
else
    main "$@"
fi
