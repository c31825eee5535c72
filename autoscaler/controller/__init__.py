"""The in-cluster controller: reconcile (observe, decide, act, report), leader election on a
Lease, telemetry, node headroom and preflight. It wires the adapters to the core's one cycle
decision and never decides anything itself."""
