#!/usr/bin/env python3
"""Merge per-chunk region statistics into one table with a total GC share."""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("stats", nargs="+")
    args = parser.parse_args()
    rows = []
    for path in args.stats:
        with open(path) as stats:
            rows += [line.rstrip("\n").split("\t") for line in stats if line.strip()]
    rows.sort(key=lambda row: int(row[0].removeprefix("chr")))
    length = sum(int(row[1]) for row in rows)
    gc = sum(int(row[2]) for row in rows)
    with open(args.out, "w") as out:
        out.write("region\tlength\tgc\tcrc32\n")
        out.writelines("\t".join(row) + "\n" for row in rows)
        out.write(f"total\t{length}\t{gc}\t{gc / length if length else 0:.4f}\n")


if __name__ == "__main__":
    main()
