# Shared by the benchmarks: a private OpenSSH sshd on a free loopback port, timing helpers and
# cleanup. Source it after `set -euo pipefail`; it sets $work, $direct (the ssh command for sshd),
# $user_key, $known_hosts and registers processes to stop in $pids.

work=$(mktemp -d /tmp/flare-bench-XXXX)
pids=()
bench_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    pkill -f -- "--state-dir $work" 2>/dev/null || true
    pkill -f -- "$work/" 2>/dev/null || true
    rm -rf "$work"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/user_key"
user_key="$work/user_key"
cp "$work/user_key.pub" "$work/authorized_keys"
known_hosts="$work/known_hosts"
: > "$known_hosts"

# start_sshd → sets $sshd_port and appends to $known_hosts.
start_sshd() {
    sshd_port=$(free_port)
    mkdir -p /run/sshd
    cat > "$work/sshd_config" <<CONF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 2000
MaxSessions 100
Subsystem sftp $(for p in /usr/lib/openssh/sftp-server /usr/libexec/sftp-server; do [ -x "$p" ] && echo "$p" && break; done)
CONF
    "$(command -v sshd || echo /usr/sbin/sshd)" -f "$work/sshd_config" -D -e 2>"$work/sshd.log" &
    pids+=($!)
    echo "[127.0.0.1]:$sshd_port $(cut -d' ' -f1,2 "$work/host_key.pub")" >> "$known_hosts"
    for _ in $(seq 50); do ssh_to "$sshd_port" true 2>/dev/null && return; sleep 0.1; done
    echo "sshd did not start: $(cat "$work/sshd.log")" >&2
    exit 1
}

# ssh_opts PORT → options for OpenSSH tools against 127.0.0.1:PORT with the bench key.
ssh_opts() {
    echo "-F /dev/null -i $user_key -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile=$known_hosts
          -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR"
}
ssh_to() { local port=$1; shift; ssh $(ssh_opts) -p "$port" "$(id -un)@127.0.0.1" "$@"; }

# measure CMD… → seconds taken (wall clock)
measure() {
    local start end
    start=$(date +%s.%N); "$@"; end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}
mbps() { python3 -c "print(f'{$1 * 1.048576 / $2:8.1f}')"; }   # MiB, seconds
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
ms() { python3 -c "print(f'{$1 * 1000:.0f}')"; }
