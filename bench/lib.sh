# Shell helpers the benchmarks share (sourced, not run).

# The machine's CPU ticks from /proc/stat: "total idle" (idle includes iowait).
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }

# Busy % of the whole machine over one second (a build in another session shows here).
busy_pct() {
    local a b
    a=$(machine_ticks); sleep 1; b=$(machine_ticks)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "%d", 100 * (1 - (y[2] - x[2]) / (y[1] - x[1])) }'
}

# CPU ticks (user + system) a process has used so far.
pid_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
