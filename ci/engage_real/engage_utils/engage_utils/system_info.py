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
