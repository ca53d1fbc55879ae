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
