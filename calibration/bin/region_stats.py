#!/usr/bin/env python3
"""Per-region statistics of a few regions of an indexed FASTA: length, GC count, CRC-32.

Reads only the regions asked for (seek to the indexed offset, read the region), the access
pattern of tools that query an indexed BAM/CRAM/FASTA by region.
"""

import argparse
import zlib

BLOCK = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", required=True, help="comma-separated region names")
    parser.add_argument("--out", required=True)
    parser.add_argument("fasta")
    parser.add_argument("index")
    args = parser.parse_args()
    with open(args.index) as index:
        where = {name: (int(length), int(offset)) for name, length, offset, *_ in
                 (line.split("\t") for line in index if line.strip())}  # fmt: skip
    with open(args.fasta, "rb") as fasta, open(args.out, "w") as out:
        for name in args.regions.split(","):
            length, offset = where[name]
            fasta.seek(offset)
            gc = crc = 0
            left = length
            while left:
                block = fasta.read(min(left, BLOCK))
                if not block:
                    raise SystemExit(f"{args.fasta}: region {name} ends early")
                gc += block.count(b"G") + block.count(b"C")
                crc = zlib.crc32(block, crc)
                left -= len(block)
            out.write(f"{name}\t{length}\t{gc}\t{crc:08x}\n")


if __name__ == "__main__":
    main()
