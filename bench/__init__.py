"""Benchmarks: `make bench` (python -m bench). Each suite compares the product against a peer
measured in the same run and reports medians and ratios, never absolute pass/fail timings."""
