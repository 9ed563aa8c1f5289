"""`python -m fusion_client ...` is the `fusion` command (what /usr/bin/fusion runs)."""

from fusion_client.launcher import main

raise SystemExit(main())
