#!/usr/bin/env python3
"""report.py: the arithmetic of "make bench" (bench/run.sh calls it).

  report.py interval ROTATION.json        "START END" in epoch ms
  report.py steps ROTATION.json           one line per step: ms STEP
  report.py delta ROTATION.json A B       seconds from step A to step B
  report.py pgstart ROTATION.json LOG     copy and start seconds
  report.py tps PGBENCH.out               the tps pgbench printed
  report.py rps REDIS_BENCHMARK.csv OP    requests/s of GET or SET
  report.py table DIR OUT.json            the table on stdout, OUT.json

DIR is the run's work directory: meta.json, samples.txt ("NAME VALUE"
lines), notrun.txt ("SCENARIO REASON" lines), and per rotation scenario
a probe.json and the rotations' API answers rot-N.json.
"""
import datetime
import json
import os
import statistics
import sys


def epoch_ms(stamp):
    t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    t = t.replace(tzinfo=datetime.timezone.utc)
    return int(round(t.timestamp() * 1000))


def load(path):
    with open(path) as f:
        return json.load(f)


def first_step(rot, name):
    for s in rot.get("steps", []):
        if s["step"] == name:
            return epoch_ms(s["time"])
    return None


def interval(rot):
    start = first_step(rot, "planned") or epoch_ms(rot["requested_at"])
    end = epoch_ms(rot["finished_at"]) if rot.get("finished_at") else None
    return start, end


def cmd_interval(path):
    start, end = interval(load(path))
    print(start, end if end else start + 600000)


def cmd_steps(path):
    rot = load(path)
    t0 = interval(rot)[0]
    for s in rot.get("steps", []):
        print(epoch_ms(s["time"]) - t0, s["step"], s.get("detail", ""))


def cmd_delta(path, a, b):
    """Seconds from the first step A to the first step B after it."""
    rot = load(path)
    ta = first_step(rot, a)
    tb = None
    for s in rot.get("steps", []):
        t = epoch_ms(s["time"])
        if s["step"] == b and ta is not None and t >= ta:
            tb = t
            break
    if ta is None or tb is None:
        sys.exit(1)
    print(round((tb - ta) / 1000.0, 3))


def cmd_pgstart(path, log):
    """Seconds from provisioning to the fresh postmaster's first log
    line, and from there to +provisioned."""
    rot = load(path)
    prov, done = first_step(rot, "provisioning"), first_step(rot,
                                                              "+provisioned")
    line = open(log).readline()
    t = datetime.datetime.strptime(" ".join(line.split()[:2]),
                                   "%Y-%m-%d %H:%M:%S.%f")
    t = int(round(t.replace(tzinfo=datetime.timezone.utc).timestamp()
                  * 1000))
    if prov is None or done is None:
        sys.exit(1)
    print(round((t - prov) / 1000.0, 3), round((done - t) / 1000.0, 3))


def cmd_tps(path):
    for line in open(path):
        if line.startswith("tps =") and "without" in line:
            print(line.split()[2])
            return
    sys.exit(1)


def cmd_rps(path, op):
    for line in open(path):
        cells = [c.strip('"') for c in line.strip().split('","')]
        if len(cells) >= 2 and cells[0].strip('"') == op:
            print(cells[1].strip('"'))
            return
    sys.exit(1)


# ---- the table ----

def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values),
            "max": max(values), "n": len(values), "values": values}


def fmt(s, digits):
    if s is None:
        return "-"
    m = f"{s['median']:.{digits}f}"
    if s["n"] == 1:
        return m
    return f"{m} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


class Table:
    def __init__(self, notrun):
        self.rows = []
        self.notrun = notrun

    def add(self, scenario, figure, value, base=None, ratio=None,
            target=None, check=None, digits=1, unit=""):
        """check(v) says whether v (the median, or the ratio when a
        ratio is the target) meets the target."""
        row = {"scenario": scenario, "figure": figure, "unit": unit,
               "rotator": value, "baseline": base, "ratio": ratio,
               "target": target, "status": "", "digits": digits}
        if scenario in self.notrun:
            row["status"] = "not run: " + self.notrun[scenario]
        elif value is None:
            row["status"] = "not run: no figure"
        elif check is not None:
            good = check()
            if target and target.startswith("("):
                # Informative: the target belongs to another engine.
                row["status"] = "within" if good else "over"
            else:
                row["status"] = "ok" if good else "MISSED"
        self.rows.append(row)

    def print(self, header):
        cols = ["#", "figure", "rotator", "baseline", "ratio", "target",
                ""]
        lines = []
        for r in self.rows:
            d = r["digits"]
            if r["status"].startswith("not run"):
                cells = [r["scenario"], r["figure"], "-",
                         fmt(r["baseline"], d), "-", r["target"] or "",
                         r["status"]]
            else:
                cells = [r["scenario"], r["figure"], fmt(r["rotator"], d),
                         fmt(r["baseline"], d), fmt(r["ratio"], 2),
                         r["target"] or "", r["status"]]
            lines.append(cells)
        width = [max(len(str(c[i])) for c in lines + [cols])
                 for i in range(len(cols))]
        print(header)
        for c in [cols] + lines:
            print("  ".join(str(x).ljust(w) for x, w in
                            zip(c, width)).rstrip())

    def json(self):
        out = []
        for r in self.rows:
            r = dict(r)
            r.pop("digits")
            out.append(r)
        return out


def ratio_of(a, b):
    """Per-repetition ratios when both sides have the same count,
    otherwise the ratio of the medians."""
    if a is None or b is None:
        return None
    if len(a["values"]) == len(b["values"]):
        return summary([x / y for x, y in zip(a["values"], b["values"])
                        if y])
    return summary([a["median"] / b["median"]]) if b["median"] else None


def ratio_med(a, b):
    """The ratio of the medians of two unpaired series."""
    if a is None or b is None or not b["median"]:
        return None
    return summary([a["median"] / b["median"]])


def read_samples(d):
    samples = {}
    path = os.path.join(d, "samples.txt")
    if os.path.exists(path):
        for line in open(path):
            parts = line.split()
            if len(parts) == 2:
                try:
                    samples.setdefault(parts[0], []).append(float(parts[1]))
                except ValueError:
                    pass
    return samples


def read_notrun(d):
    notrun = {}
    path = os.path.join(d, "notrun.txt")
    if os.path.exists(path):
        for line in open(path):
            key, _, reason = line.strip().partition(" ")
            notrun.setdefault(key, reason)
    return notrun


def probe_rotations(d, name):
    path = os.path.join(d, name, "probe.json")
    if not os.path.exists(path):
        return None, []
    p = load(path)
    return p, p.get("rotations", [])


def rotation_steps(d, name):
    """Per rotation: the ms from the first step to each named step."""
    out = []
    i = 1
    while os.path.exists(os.path.join(d, name, f"rot-{i}.json")):
        rot = load(os.path.join(d, name, f"rot-{i}.json"))
        t0 = interval(rot)[0]
        steps = {}
        for s in rot.get("steps", []):
            steps.setdefault(s["step"], epoch_ms(s["time"]) - t0)
        out.append({"id": rot.get("id"), "state": rot.get("state"),
                    "write_pause_ms": rot.get("write_pause_ms"),
                    "steps_ms": steps})
        i += 1
    return out


def rotation_rows(t, sc, p, rots, w50, wmax, lost_t, failed_t, base=None):
    windows = summary([r["window_ms"] for r in rots]) if rots else None
    lost = summary([r["lost"] for r in rots]) if rots else None
    failed = summary([r["failed"] for r in rots]) if rots else None
    bw = summary([r["window_ms"] for r in base]) if base else None
    bl = summary([r["lost"] for r in base]) if base else None
    bf = summary([r["failed"] for r in base]) if base else None
    t.add(sc, "write window p50 (ms)", windows, bw,
          ratio_med(windows, bw), f"<= {w50}",
          lambda: windows["median"] <= w50, 0)
    mx = summary([windows["max"]]) if windows else None
    bmx = summary([bw["max"]]) if bw else None
    t.add(sc, "write window max (ms)", mx, bmx,
          ratio_med(mx, bmx), f"<= {wmax}",
          lambda: windows["max"] <= wmax, 0)
    t.add(sc, "lost writes per rotation", lost, bl, None, f"= {lost_t}",
          lambda: lost["max"] <= lost_t and p.get("lost", 0) == 0, 0)
    t.add(sc, "failed ops per rotation", failed, bf, None,
          f"<= {failed_t}", lambda: failed["max"] <= failed_t, 0)


PHASES = (("provisioning", "provisioning", "+provisioned"),
          ("catch-up, verify", "+provisioned", "switching"),
          ("switch: to +held", "switching", "+held"),
          ("held -> fenced", "+held", "+fenced"),
          ("fenced -> promoted", "+fenced", "+promoted"),
          ("promoted -> released", "+promoted", "+released"),
          ("tearing down", "tearing_down", "+torn-down"))


def phase_rows(t, sc, steps):
    """Where the time of scenario SC's rotations goes: the median ms
    between steps, without a target."""
    for label, a, b in PHASES:
        v = summary([r["steps_ms"][b] - r["steps_ms"][a] for r in steps
                     if a in r["steps_ms"] and b in r["steps_ms"]])
        if v is not None:
            t.add(sc, f"  {label} (ms)", v, digits=0)


def cmd_table(d, out_path):
    meta = load(os.path.join(d, "meta.json"))
    s = read_samples(d)
    notrun = read_notrun(d)
    t = Table(notrun)

    def S(name):
        return summary(s.get(name, []))

    # 1. PostgreSQL primary rotation under the probe.
    p1, r1 = probe_rotations(d, "s1")
    rotation_rows(t, "1", p1 or {}, r1, 250, 500, 0, 1)
    phase_rows(t, "1", rotation_steps(d, "s1"))

    # 2 and 3. Redis: rotator beside a plain FAILOVER.
    p2, r2 = probe_rotations(d, "s2")
    p3, r3 = probe_rotations(d, "s3")
    rotation_rows(t, "2", p2 or {}, r2, 50, 150, 0, 1, r3)
    phase_rows(t, "2", rotation_steps(d, "s2"))

    # 3 is the baseline column of 2.
    t.add("3", "plain FAILOVERs measured (baseline of 2)",
          summary([len(r3)]) if r3 else None, digits=0)

    # 4. Fresh node from a restore point versus dd.
    prov, dd = S("s4.provision_s"), S("s4.dd_s")
    r4 = ratio_of(prov, dd)
    t.add("4", f"fresh node, {meta.get('restore_point_mb', '?')} MB (s)",
          prov, dd, r4, "ratio <= 1.3",
          lambda: r4["median"] <= 1.3, 1)
    t.add("4", "  copy, verify, sync (s)", S("s4.copy_s"), dd,
          ratio_of(S("s4.copy_s"), dd), digits=1)
    t.add("4", "  start the server (s)", S("s4.start_s"), digits=1)

    # 5. Snapshot verification versus openssl.
    v, o = S("s5.verify_mbs"), S("s5.openssl_mbs")
    r5 = ratio_of(v, o)
    t.add("5", "snapshot verify (MB/s)", v, o, r5, "ratio >= 0.9",
          lambda: r5["median"] >= 0.9, 0)

    # 6. Whole rotation of the big cluster versus pg_basebackup.
    rot, bb = S("s6.rotation_s"), S("s6.basebackup_s")
    r6 = ratio_of(rot, bb)
    t.add("6", f"rotation, {meta.get('restore_point_mb', '?')} MB (s)",
          rot, bb, r6, "ratio <= 2.5", lambda: r6["median"] <= 2.5, 1)
    p6, w6 = probe_rotations(d, "s6")
    t.add("6", "  write window under load (ms)",
          summary([r["window_ms"] for r in w6]) if w6 else None, digits=0)
    t.add("6", "  lost writes", summary([r["lost"] for r in w6])
          if w6 else None, target="= 0",
          check=lambda: p6.get("lost", -1) == 0, digits=0)
    phase_rows(t, "6", rotation_steps(d, "s6"))

    # 7. Endpoint overhead.
    ep, di = S("s7.pg_endpoint_tps"), S("s7.pg_direct_tps")
    r7 = ratio_of(ep, di)
    t.add("7", "pgbench -S (tps)", ep, di, r7, "ratio >= 0.9",
          lambda: r7["median"] >= 0.9, 0)
    for op in ("GET", "SET"):
        e, b = S(f"s7r.{op}_endpoint"), S(f"s7r.{op}_direct")
        r = ratio_of(e, b)
        t.add("7r", f"redis-benchmark {op} (ops/s)", e, b, r,
              "ratio >= 0.8", lambda r=r: r["median"] >= 0.8, 0)

    # 8. Coordinator footprint.
    n8 = meta.get("footprint_clusters", 20)
    n8p = meta.get("footprint_postgres_clusters", 20)
    m8, b8 = S("s8r.vmhwm_mb"), S("s8r1.vmhwm_mb")
    t.add("8r", f"VmHWM, {n8} idle redis clusters (MB)", m8, b8,
          ratio_of(m8, b8), "<= 20", lambda: m8["median"] <= 20, 1)
    t.add("8r", "  threads of rotator serve", S("s8r.threads"),
          S("s8r1.threads"), None, digits=0)
    t.add("8r", "  RSS anonymous (MB)",
          S("s8r.RssAnon_mb"), S("s8r1.RssAnon_mb"), None, digits=1)
    t.add("8r", "  RSS file-backed (MB)", S("s8r.RssFile_mb"),
          S("s8r1.RssFile_mb"), None, digits=1)
    m8p, b8p = S("s8p.vmhwm_mb"), S("s8p1.vmhwm_mb")
    t.add("8p", f"VmHWM, {n8p} idle postgres clusters (MB)", m8p, b8p,
          ratio_of(m8p, b8p), "(<= 20)", lambda: m8p["median"] <= 20, 1)
    t.add("8p", "  threads of rotator serve", S("s8p.threads"),
          S("s8p1.threads"), None, digits=0)
    t.add("8p", "  RSS anonymous (MB)",
          S("s8p.RssAnon_mb"), S("s8p1.RssAnon_mb"), None, digits=1)
    t.add("8p", "  RSS file-backed (MB)", S("s8p.RssFile_mb"),
          S("s8p1.RssFile_mb"), None, digits=1)

    header = (f"rotator bench {meta['date']}: {meta['cpus']} CPUs, "
              f"{meta['memory_mb']} MB, PostgreSQL {meta['postgres']}, "
              f"Redis {meta['redis']}, rotator {meta['rotator']}"
              f"{', QUICK' if meta.get('quick') else ''}")
    t.print(header)
    missed = [f"{r['scenario']} {r['figure']}" for r in t.rows
              if r["status"] == "MISSED"]
    print("missed: " + ("; ".join(missed) if missed else "none"))
    result = dict(meta)
    result["rows"] = t.json()
    result["probes"] = {k: v for k, v in (("s1", p1), ("s2", p2),
                                           ("s3", p3)) if v}
    result["rotation_steps"] = {k: rotation_steps(d, k)
                                for k in ("s1", "s2", "s6")}
    result["samples"] = s
    result["not_run"] = notrun
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


def main(argv):
    cmds = {"interval": cmd_interval, "steps": cmd_steps, "delta": cmd_delta,
            "pgstart": cmd_pgstart,
            "tps": cmd_tps,
            "rps": cmd_rps, "table": cmd_table}
    if len(argv) < 3 or argv[1] not in cmds:
        sys.stderr.write(__doc__)
        return 2
    cmds[argv[1]](*argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
