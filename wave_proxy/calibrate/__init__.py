"""Calibration: compare a pipeline's run with S3 staging against its run through Fusion.

`trace` reads Nextflow trace files, `compare` turns two runs into per-process and total
changes, `report` renders them as text and as a self-contained HTML page around `chart`'s
timeline (matplotlib, SVG). All of it is pure (text in, text out); `wave_proxy.cli.calibrate`
does the file I/O.
"""
