#!/usr/bin/env bash
# timeout: 60
# 44-dashboards: the alert rules pass `promtool check rules` and their unit tests
# (`promtool test rules`), the example scrape config passes `promtool check config`,
# and the Grafana dashboard is importable JSON: a Prometheus datasource variable, the
# instance and pid selectors, every query on that datasource and filtered by both, and
# every metric it names is one loopscope serve exports (checked against the metric
# table in userspace/wire/metrics.md). PromQL validity against live data is 42-serve-prometheus.py.
source "$(dirname "$0")/../lib.sh"
need_cmd promtool
need_cmd python3
D=$(cd "$(dirname "$0")/../../dashboards" && pwd)
METRICS=$(cd "$(dirname "$0")/../.." && pwd)/userspace/wire/metrics.md

check "promtool check rules" promtool check rules "$D/prometheus/loopscope-alerts.yml"
check "promtool test rules (alert unit tests)" promtool test rules "$D/prometheus/loopscope-alerts.test.yml"
check "promtool check config (example scrape config + rules)" promtool check config "$D/prometheus/prometheus.yml"

out=$(python3 - "$D/grafana/loopscope.json" "$METRICS" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
readme = open(sys.argv[2]).read()
documented = set(re.findall(r"^\| `([a-z_]+)` \|", readme, re.M))
problems = []
v = {x["name"]: x for x in d["templating"]["list"]}
if v.get("datasource", {}).get("type") != "datasource" or v["datasource"].get("query") != "prometheus":
    problems.append("no Prometheus datasource variable")
for name in ("instance", "pid"):
    if v.get(name, {}).get("type") != "query":
        problems.append("no %s selector" % name)
n = 0
for p in d["panels"]:
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${datasource}":
        problems.append("panel %r not on ${datasource}" % p["title"])
    for t in p["targets"]:
        n += 1
        e = t["expr"]
        if "$instance" not in e:
            problems.append("%r ignores the instance selector" % p["title"])
        if "$pid" not in e and "loopscope_attached_targets" not in e and "agent_cpu" not in e and "ringbuf" not in e:
            problems.append("%r ignores the pid selector" % p["title"])
        for m in re.findall(r"\b(loopscope_[a-z_]+)", e):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            if m not in documented and base not in documented:
                problems.append("%r uses %s, not in the metric table" % (p["title"], m))
if len(documented) < 25:
    problems.append("metric table has only %d rows" % len(documented))
print("%d queries, %d documented metrics" % (n, len(documented)))
for x in problems:
    print("PROBLEM", x)
PY
)
echo "# $out" | head -1
check "Grafana dashboard: datasource variable, selectors, documented metrics only" \
	sh -c "! printf '%s\n' \"\$1\" | grep -q PROBLEM" _ "$out"
printf '%s\n' "$out" | grep PROBLEM | head -5
done_testing
