#!/usr/bin/env python3
"""Runs tools/net/echo-matrix.sh several times and prints, for each server
and N, the median of each figure with its spread (min-max) and the median
of its per-run ratio to the epoll reference (each ratio taken within one
run, where both were measured minutes apart at most): the TLS rows'
ratios are to echo-tls-ref, the others' to echo-epoll-ref.

  tools/net/echo-median.py [-r REPS] [BUILD_DIR]     (default 3 reps)

The environment of echo-matrix.sh (DURATION, CONNS, SERVERS, ...) passes
through.  Needs python3."""
import json, os, statistics, subprocess, sys

def main():
    args, reps = sys.argv[1:], 3
    if args[:1] == ['-r']:
        reps, args = int(args[1]), args[2:]
    here = os.path.dirname(os.path.abspath(__file__))
    runs = []
    for i in range(reps):
        out = subprocess.run([os.path.join(here, 'echo-matrix.sh'), '--json'] + args,
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(f'run {i + 1} of {reps} done', file=sys.stderr)
    ref = runs[0]['reference']
    ref_of = lambda s: 'echo-tls-ref' if 'tls' in s else ref
    keys = ['rate', 'cpu_us_per_rt', 'p50_us', 'p99_us', 'peak_rss_kb']
    cells = {}
    for run in runs:
        refs = {(c['server'], c['conns']): c for c in run['cells']}
        for c in run['cells']:
            d = cells.setdefault((c['server'], c['conns']), {k: [] for k in keys + ['rate_x', 'cpu_x']})
            for k in keys:
                if c.get(k) is not None: d[k].append(c[k])
            r = refs[(ref_of(c['server']), c['conns'])]
            if c['rate'] and r['rate']: d['rate_x'].append(c['rate'] / r['rate'])
            if c['cpu_us_per_rt'] and r['cpu_us_per_rt']:
                d['cpu_x'].append(c['cpu_us_per_rt'] / r['cpu_us_per_rt'])
    def fmt(v, f):
        if not v: return 'n/a'
        return f'{f(statistics.median(v))} [{f(min(v))}-{f(max(v))}]'
    i0 = lambda x: f'{x:.0f}'
    f2 = lambda x: f'{x:.2f}'
    f3 = lambda x: f'{x:.3f}'
    print(f'median [min-max] of {reps} runs; x ref = median of per-run ratios to {ref}'
          ' (TLS rows: to echo-tls-ref)')
    print(f'{"server":16} {"N":>6}  {"rt/s":24} {"x ref":18} {"cpu us/rt":24} {"x ref":18} {"peak RSS kB":22}')
    for (s, n), d in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f'{s:16} {n:>6}  {fmt(d["rate"], i0):24} {fmt(d["rate_x"], f2):18} '
              f'{fmt(d["cpu_us_per_rt"], f3):24} {fmt(d["cpu_x"], f2):18} {fmt(d["peak_rss_kb"], i0):22}')
    # The Lua servers' CPU per round trip against luv's, run by run.
    for s in ('socketloop-lua', 'socketloop-luajit', 'socketloop-lua-uring'):
        for n in sorted({c['conns'] for run in runs for c in run['cells']}):
            v = []
            for run in runs:
                by = {c['server']: c for c in run['cells'] if c['conns'] == n}
                a, b = by.get(s), by.get('luv-ref')
                if a and b and a['cpu_us_per_rt'] and b['cpu_us_per_rt']:
                    v.append(a['cpu_us_per_rt'] / b['cpu_us_per_rt'])
            if v:
                print(f'cpu us/rt vs luv-ref: {s:18} N={n:<6} {fmt(v, f2)} x')
    for s in sorted({c["server"] for c in runs[0]['idle']}):
        v = [c['rss_bytes_per_conn'] for run in runs for c in run['idle']
             if c['server'] == s and c['rss_bytes_per_conn'] is not None]
        # Against its reference run by run, as a difference: what one
        # connection costs more.
        dv = []
        for run in runs:
            by = {c['server']: c['rss_bytes_per_conn'] for c in run['idle']}
            a, b = by.get(s), by.get(ref_of(s))
            if a is not None and b is not None: dv.append(a - b)
        n = runs[0]['idle'][0]['conns']
        print(f'idle RSS per connection at {n}: {s:16} {fmt(v, i0)} B, '
              f'{ref_of(s)} + {fmt(dv, i0)} B')

main()
