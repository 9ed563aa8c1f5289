#!/usr/bin/env python3
"""Write the calibration's synthetic input: a FASTA of N regions and its index.

Each region is one sequence line of pseudo-random bases; the index (like samtools' .fai: name,
length, offset) lets a task read a region without reading the rest of the file. Standard
library only, so any image with a Python 3 runs it.
"""

import argparse
import random

BASES = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)
BLOCK = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, required=True, help="how many regions")
    parser.add_argument("--region-kib", type=int, required=True, help="bases per region, in KiB")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("fasta")
    parser.add_argument("index")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    length = args.region_kib * 1024
    with open(args.fasta, "wb") as fasta, open(args.index, "w") as index:
        for number in range(args.regions):
            name = f"chr{number}"
            fasta.write(f">{name}\n".encode())
            index.write(f"{name}\t{length}\t{fasta.tell()}\n")
            left = length
            while left:
                block = min(left, BLOCK)
                fasta.write(rng.randbytes(block).translate(BASES))
                left -= block
            fasta.write(b"\n")


if __name__ == "__main__":
    main()
