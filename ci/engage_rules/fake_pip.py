"""`python3 -m pip` for the driver probe (`drivers.py` puts a `python3` running this first on PATH):
nothing is downloaded; an install writes what pip's --target writes (the package, its dist-info,
its scripts in <target>/bin), replacing an existing entry only with --upgrade, as pip does.
`python3 -c CODE` (the python3 driver's check of the interpreter) runs as this interpreter runs it."""
import os
import re
import shutil
import sys

args = sys.argv[1:]
if args[:1] == ["-c"]:
    os.execv(sys.executable, [sys.executable] + args)
if args[:3] == ["-m", "pip", "--version"]:
    print("pip (check_extension's stand-in)")
    sys.exit(0)
target = args[args.index("--target") + 1]
name = re.split(r"[=<>!~ ;\[]", os.path.basename(args[-1]))[0] or "package"
for entry, file_name in ((name.replace("-", "_"), "__init__.py"), (name + ".dist-info", "METADATA"),
                         ("bin", name + "-script")):
    path = os.path.join(target, entry)
    if os.path.exists(path):
        if "--upgrade" not in args:
            continue
        shutil.rmtree(path)
    os.makedirs(path)
    open(os.path.join(path, file_name), "w").close()
