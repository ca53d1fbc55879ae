#!/usr/bin/env bash
# The Ansible output run by a user who is not root, with umask 077: the playbook must deploy three
# local nodes, then report changed=0 on a second run. `cargo test ansible` runs as whoever runs
# the tests (root in CI), where tar keeps the archive's modes whatever the umask; this checks the
# other case. Needs root (it creates the user), /usr/bin/python3 (3.11, for the pinned wheels),
# GNU tar and the package index (pip installs ci/requirements-ansible.txt into WORK/venv).
#
#   sudo ci/ansible-nonroot.sh [--work DIR] [--user NAME]
#
# Prints each run's PLAY RECAP and a verdict; exit 0 when the second run changed nothing, 1 when
# it did (or a run failed), 2 for a set-up problem. Caretakers it started are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=/tmp/datablox-ansible-nonroot
user=datablox-nonroot
while [ $# -gt 0 ]; do
    case $1 in
        --work) work=$2; shift 2 ;;
        --user) user=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: ci/ansible-nonroot.sh [--work DIR] [--user NAME]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "error: run as root (it creates the user $user)" >&2; exit 2; }
python=/usr/bin/python3
[ -x $python ] || { echo "error: $python is missing" >&2; exit 2; }
id "$user" >/dev/null 2>&1 || useradd --create-home "$user"
home_dir=$(getent passwd "$user" | cut -d: -f6)

rm -rf "$work" && mkdir -p "$work"
echo "==> ansible-core into $work/venv (ci/requirements-ansible.txt)"
$python -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --no-cache-dir --require-hashes -r ci/requirements-ansible.txt \
    || { echo "error: could not install ansible-core" >&2; exit 2; }
echo "==> cargo xtask deploy --topology topologies/word-count.json --nodes master,w1,w2 --ansible $work/out"
cargo xtask deploy --topology topologies/word-count.json --nodes master,w1,w2 --ansible "$work/out" >/dev/null
chmod -R a+rX "$work"

run=$home_dir/ansible-run
cat > "$work/run.sh" <<EOI
set -u
umask 077
rm -rf $run && mkdir -p $run
cat > $run/hosts.ini <<EOH
[datablox]
master ansible_connection=local datablox_home=$run/h/master datablox_bundle=$run/b/master datablox_port=24101
w1 ansible_connection=local datablox_home=$run/h/w1 datablox_bundle=$run/b/w1 datablox_port=24102
w2 ansible_connection=local datablox_home=$run/h/w2 datablox_bundle=$run/b/w2 datablox_port=24103
[datablox:vars]
datablox_python=$python
ansible_python_interpreter=$python
EOH
export ANSIBLE_HOME=$run/.ansible ANSIBLE_LOCAL_TEMP=$run/.ansible/tmp ANSIBLE_REMOTE_TEMP=$run/.ansible/rtmp
for i in 1 2; do
    echo "--- run \$i"
    $work/venv/bin/ansible-playbook -i $work/out/inventory.ini -i $run/hosts.ini $work/out/site.yml > $run/run\$i.log 2>&1
    echo "rc \$?"
    grep -E '^(master|w1|w2) +:' $run/run\$i.log
done
for n in master w1 w2; do $python $run/b/\$n/bin/deploy --home $run/h/\$n stop >/dev/null 2>&1 || true; done
EOI
output=$(su "$user" -c "bash $work/run.sh")
echo "$output"
second=$(echo "$output" | sed -n '/--- run 2/,$p')
if echo "$output" | grep -q "^rc [^0]"; then
    echo "FAILED: a playbook run failed (logs: $run/run1.log, $run/run2.log)"; exit 1
fi
if [ "$(echo "$second" | grep -c 'changed=0 ')" = 3 ]; then
    echo "OK: as $user with umask 077, the second run changed nothing on the 3 hosts"
else
    echo "FAILED: the second run changed something (log: $run/run2.log)"; exit 1
fi
