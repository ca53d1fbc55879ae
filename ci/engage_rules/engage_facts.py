"""What the checker knows of Engage: the source files its rules cite, the keys Engage's standard
metadata defines, and how Engage names driver directories and compares versions."""
import json
import re

EXTENSION = "datablox"

# Keys Engage's standard metadata (`metadata/resource_definitions.json` of Engage) defines that an
# extension may use, with the versions defined there. Versions are strings compared as the config
# engine compares them (see `version_matches`): `pip`'s version is the string "any".
PLATFORMS = {"ubuntu-linux": ["11.10", "12.04", "14.04"], "mac-osx": ["10.5", "10.6"]}
STANDARD = {
    "python": ["2.5", "2.6", "2.7"], "pip": ["any"], "setuptools": ["0.6"], "pyzmq-abstract": ["2.1"],
    "pycrypto": ["2.3"], "gunicorn": ["0.17"], "java-virtual-machine-abstract": ["1.5", "1.6"],
    "pymongo": ["2.1"], "redis": ["2.4"], "lxml": ["2.3"], "sunburnt": ["0.5"], "psycopg2": ["2.4"],
    "boto": ["2.12"], "pytz": ["2013"], "six": ["1.7"], "PyYAML": ["any"], "engage_utils": ["1.0"],
}
# The host port every platform provides (Engage's platform definitions, output port `host`).
HOST_PORT = {"genforma_home": "path", "log_directory": "path", "hostname": "string",
             "os_user_name": "string", "os_type": "string", "cpu_arch": "string",
             "private_ip": "string", "sudo_password": "password"}

RDEF = "config_src/config/parse_rdef.ml"
GENERATE = "config_src/config/generate.ml"
TEMPLATES = "config_src/config/templates.ml"
PARSE_RESOURCE = "config_src/config/parse_resource.ml"
PY_RDEF = "python_pkg/engage/utils/rdef.py"
LIBRARY = "python_pkg/engage/engine/library.py"
INSTALLER_CONFIG = "python_pkg/engage/engine/installer_config.py"
FILE_LAYOUT = "python_pkg/engage/engine/engage_file_layout.py"
PREPROCESS = "python_pkg/engage/engine/preprocess_resources.py"


def driver_dir_name(key):
    # python_pkg/engage/utils/file.py mangle_resource_key (case kept).
    return re.sub("[.-]", "_", (key["name"] + "__" + key["version"]).replace(" ", ""))


def key_text(key):
    return "%s %s" % (key.get("name"), json.dumps(key.get("version")) if isinstance(key.get("version"), dict)
                      else key.get("version"))


def is_scalar(value):
    return value is None or isinstance(value, (str, int, float, bool))


def version_matches(spec, version):
    """config_src/config/generate.ml `matches` with resources.ml `scalar_eq`/`scalar_gt`/...:
    a string version must be equal (`*` and `any` are plain strings, no wildcards), and a range
    compares strings byte by byte (so "10.10" < "10.5")."""
    if not isinstance(spec, dict):
        return spec == version
    tests = {"greater-than": lambda bound: version > bound, "greater-than-or-equal": lambda bound: version >= bound,
             "less-than": lambda bound: version < bound, "less-than-or-equal": lambda bound: version <= bound}
    return all(isinstance(bound, str) and tests[op](bound) for op, bound in spec.items())
