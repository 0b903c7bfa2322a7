#!/usr/bin/env python3
"""ncu_sass_summary.py: what a kernel's warps spend their issue slots and stalls on, from Nsight Compute's
per-instruction SASS page (`ncu -i X.ncu-rep --page source --csv --print-source sass > X.sass.csv`).
  python3 bench/ncu_sass_summary.py X.sass.csv [top N instructions by stall samples]
Prints executed warp instructions by opcode (share of executed, share of stall samples), the stall reasons,
and the N instructions with the most samples (address, executed count, SASS)."""
import collections
import csv
import re
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = list(csv.reader(open(sys.argv[1])))
    hdr = next((r for r in rows if 'Source' in r and 'Instructions Executed' in r), None)
    if hdr is None:
        sys.exit(f"{sys.argv[1]}: no SASS table (expected the columns 'Source' and 'Instructions Executed')")
    ix = {h: i for i, h in enumerate(hdr)}
    data = rows[rows.index(hdr) + 1:]
    stalls = [h for h in hdr if h.startswith('stall_') and 'Not Issued' not in h]
    by_op, samp, st = collections.Counter(), collections.Counter(), collections.Counter()
    tot_ex = tot_samp = 0
    lines = []
    for r in data:
        if len(r) < len(hdr):
            continue
        src = r[ix['Source']].strip()
        ex = int(r[ix['Instructions Executed']] or 0)
        s = int(r[ix['Warp Stall Sampling (All Samples)']] or 0)
        op = re.sub(r'^@!?U?P\w+\s+', '', src).split(' ')[0]
        by_op[op] += ex
        samp[op] += s
        tot_ex += ex
        tot_samp += s
        for h in stalls:
            st[h] += int(r[ix[h]] or 0)
        lines.append((s, ex, r[ix['Address']][-5:], src[:90]))
    tot_ex, tot_samp = max(tot_ex, 1), max(tot_samp, 1)
    print(f'executed warp instructions {tot_ex}, stall samples {tot_samp}')
    print('by opcode (share of executed; share of samples):')
    for op, n in by_op.most_common(20):
        print(f'  {op:28s} {n:12d} {n / tot_ex:6.1%}  samples {samp[op] / tot_samp:6.1%}')
    print('stall reasons (share of samples):')
    for h, n in st.most_common(10):
        print(f'  {h:28s} {n / tot_samp:6.1%}')
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if top:
        print('instructions with the most samples (samples, executed, address, SASS):')
        for s, ex, a, src in sorted(lines, reverse=True)[:top]:
            print(f'  {s:7d} {ex:11d} {a} {src}')


if __name__ == '__main__':
    main()
