# bench/verdict.py: the verdict line of bench/bench_verdict.h for the benchmarks' Python reports
# (bench/verdict.sh is the same for shell), so every benchmark states each target one way and
# scripts/bench_all.sh's table reads it:
#
#   VERDICT <bench> | <target> | MET or MISSED | <figure> <unit> | <relation> <bound> <unit>
#
# figure None (not measured) is MISSED. Usage from a script run at the repository's root:
#   sys.path.insert(0, "bench"); from verdict import verdict


def verdict(bench, target, figure, rel, bound, unit):
    ok = figure is not None and {"<=": figure <= bound, "<": figure < bound,
                                 ">=": figure >= bound, ">": figure > bound}[rel]
    num = lambda x: "n/a" if x is None else f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    print(f"VERDICT {bench} | {target} | {'MET' if ok else 'MISSED'} | {num(figure)} {unit} | "
          f"{rel} {num(bound)} {unit}")
