# Shell helpers the benchmarks share (sourced, not run).

# The machine's CPU ticks from /proc/stat: "total idle steal" (idle includes iowait). On a VM,
# steal is time the host gave this machine's CPUs to other guests: a round with much of it
# measures the neighbours, not the code (seen here: 35-45 % for minutes at a time).
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6, $9}' /proc/stat; }

# Steal % between two machine_ticks readings.
steal_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[1] - x[1];
        printf "%d", (d > 0 ? 100 * (y[3] - x[3]) / d : 0) }'
}

# Busy % of the whole machine over one second (a build in another session shows here).
busy_pct() {
    local a b
    a=$(machine_ticks); sleep 1; b=$(machine_ticks)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "%d", 100 * (1 - (y[2] - x[2]) / (y[1] - x[1])) }'
}

# CPU ticks (user + system) a process has used so far.
pid_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

