#!/bin/bash
# phoenix feature runner: cloud-init starts it once from runcmd with the VM's feature names.
# It runs every feature in order, each with its own log, even after one has failed, and records
# per feature the exit code, start, duration and the last log lines, plus the cloud-init
# instance-id it ran under, in one JSON status file that phoenix reads through the guest agent.
# It exits non-zero when any feature failed, so that `cloud-init status` says error (cloud-init
# joins runcmd into one /bin/sh script without `set -e`: only the last command's status counts,
# which is why this runner is the last runcmd entry).  Re-running it is safe: features are
# idempotent, and a second run waits for the first (flock).
set -uo pipefail

FEATURE_DIR="${PHOENIX_FEATURE_DIR:-/var/lib/phoenix/features}"
LOG_DIR="${PHOENIX_LOG_DIR:-/var/log/phoenix}"
STATUS_FILE="${PHOENIX_STATUS_FILE:-/var/lib/phoenix/status.json}"
INSTANCE_ID_FILE="${PHOENIX_INSTANCE_ID_FILE:-/var/lib/cloud/data/instance-id}"
LOCK_FILE="${PHOENIX_LOCK_FILE:-/run/phoenix-features.lock}"
TAIL_LINES=20

mkdir -p "$LOG_DIR" "$(dirname "$STATUS_FILE")"
exec 9>"$LOCK_FILE"
flock 9

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# A JSON string literal of $1: invalid UTF-8 and control characters dropped, quotes escaped.
json_str() {
    local s
    if command -v iconv >/dev/null 2>&1; then
        s="$(printf '%s' "$1" | iconv -f UTF-8 -t UTF-8 -c 2>/dev/null | tr -d '\000-\010\012-\037')"
    else
        s="$(printf '%s' "$1" | tr -d '\000-\010\012-\037')"
    fi
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\t'/\\t}"
    printf '"%s"' "$s"
}

# The last TAIL_LINES lines of a log as a JSON array.
tail_json() {
    local line sep="" out="["
    while IFS= read -r line || [ -n "$line" ]; do
        out+="$sep$(json_str "$line")"
        sep=","
    done < <(tail -n "$TAIL_LINES" "$1" 2>/dev/null)
    printf '%s]' "$out"
}

instance_id="$(cat "$INSTANCE_ID_FILE" 2>/dev/null || true)"
instance_id="${instance_id:-unknown}"
run_started="$(now)"
run_finished=""
run_state="running"
run_exit="null"

names=("$@")
states=()
codes=()
starts=()
durations=()
tails=()
for i in "${!names[@]}"; do
    states[i]="pending"
done

write_status() {
    local i sep="" tmp features="["
    for i in "${!names[@]}"; do
        features+="$sep{\"name\":$(json_str "${names[i]}"),\"state\":\"${states[i]}\""
        if [ "${states[i]}" != "pending" ]; then
            features+=",\"started\":\"${starts[i]}\",\"log\":$(json_str "$LOG_DIR/feature-${names[i]}.log")"
        fi
        if [ "${states[i]}" = "done" ]; then
            features+=",\"exit_code\":${codes[i]},\"duration_s\":${durations[i]},\"log_tail\":${tails[i]}"
        fi
        features+="}"
        sep=","
    done
    features+="]"
    tmp="$STATUS_FILE.tmp.$$"
    printf '{"format":1,"instance_id":%s,"state":"%s","started":"%s","finished":%s,"exit_code":%s,"features":%s}\n' \
        "$(json_str "$instance_id")" "$run_state" "$run_started" \
        "$([ -n "$run_finished" ] && printf '"%s"' "$run_finished" || printf null)" \
        "$run_exit" "$features" >"$tmp" && mv -f "$tmp" "$STATUS_FILE"
}

write_status
failed=0
for i in "${!names[@]}"; do
    name="${names[i]}"
    log="$LOG_DIR/feature-$name.log"
    script="$FEATURE_DIR/$name.sh"
    states[i]="running"
    starts[i]="$(now)"
    write_status
    t0="$(date +%s)"
    if [ -x "$script" ]; then
        "$script" </dev/null >"$log" 2>&1
        code=$?
    else
        echo "phoenix: feature script $script is missing or not executable" >"$log"
        code=127
    fi
    durations[i]=$(( $(date +%s) - t0 ))
    codes[i]=$code
    tails[i]="$(tail_json "$log")"
    states[i]="done"
    if [ "$code" -ne 0 ]; then
        failed=$((failed + 1))
    fi
    echo "phoenix: feature $name exited $code after ${durations[i]}s"
    write_status
done

run_state="done"
run_finished="$(now)"
run_exit=0
if [ "$failed" -gt 0 ]; then
    run_exit=1
fi
write_status
echo "phoenix: $((${#names[@]} - failed)) of ${#names[@]} features succeeded"
exit "$run_exit"
