#!/bin/bash
# Kill -9 a benchmark run mid-way, rerun the same command, and compare with an uninterrupted run.
# usage: benchmarks/studies/resume_check.sh SUITE OUT_KILLED OUT_UNINTERRUPTED MIN_ROWS [extra run args]
# OUT_UNINTERRUPTED must hold a finished run of the same command; the kill comes once MIN_ROWS cells are stored.
set -u
SUITE=$1; OUT=$2; REF=$3; N=$4; shift 4
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
rm -rf "$OUT"
$PY -m benchmarks run "$SUITE" --out "$OUT" --quiet --no-report "$@" > "$OUT.first.log" 2>&1 &
PID=$!
while true; do
  sleep 1
  if [ -f "$OUT/results.sqlite" ]; then
    C=$($PY - "$OUT" <<'PYEOF'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1] + "/results.sqlite").execute("select count(*) from cells").fetchone()[0])
PYEOF
)
    if [ "$C" -ge "$N" ]; then break; fi
  fi
done
kill -9 $PID
wait $PID 2>/dev/null
echo "killed pid $PID with -9 after $C stored cells"
START=$(date +%s)
$PY -m benchmarks run "$SUITE" --out "$OUT" --quiet --no-report "$@"
echo "rerun exit code $? after $(( $(date +%s) - START )) s"
$PY - "$OUT" "$REF" <<'PYEOF'
import sys
from benchmarks.store import Store
a, b = Store(sys.argv[1] + "/results.sqlite"), Store(sys.argv[2] + "/results.sqlite")
ra, rb = a.cells(), b.cells()
keys = [r["key"] for r in ra]
print("rows after resume:", len(ra), "distinct keys:", len(set(keys)), "uninterrupted rows:", len(rb))
ma = {r["key"]: (r["status"], r["metrics"]) for r in ra}
mb = {r["key"]: (r["status"], r["metrics"]) for r in rb}
print("same keys as uninterrupted run:", set(ma) == set(mb))
print("identical status + metrics for every cell:", ma == mb)
ia = {r["key"]: a.images(r["key"]) for r in ra}
ib = {r["key"]: b.images(r["key"]) for r in rb}
print("identical per-image metrics:", {k: [i["metrics"] for i in v] for k, v in ia.items()} == {k: [i["metrics"] for i in v] for k, v in ib.items()})
PYEOF
