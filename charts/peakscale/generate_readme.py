"""Regenerate README.md from values.yaml (its ``# --`` comments). Run: python charts/peakscale/generate_readme.py

A test fails when the committed README differs from what this prints, so the two never drift.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

INTRO = """# peakscale Helm chart

The peakscale controller: it reads Prometheus and the `PromotionEvent` calendar, and raises each tier's
capacity before a peak, early enough for the tier's lead time (see the project README).

```sh
helm install peakscale charts/peakscale -n peakscale-system --create-namespace \
  --set prometheus.url=http://prometheus-operated.monitoring.svc:9090
```

- CRDs (`ScalingPolicy`, `PromotionEvent`, group `peakscale.io/v1alpha1`) are in `crds/` and installed first.
- RBAC is least-privilege: a Role in each watched namespace (`watchNamespaces`, else the release's);
  one ClusterRole for them only with `clusterWide: true` (it can then update every HPA and scale
  subresource, `kube-system` included). The leader-election Lease and the node-headroom placeholder
  Deployments are reachable in the release namespace only; a read-only ClusterRole lists nodes and pods
  and reads PriorityClasses (preflight: is there node room for the plan). The rules are exactly the calls
  the controller makes (`API_PERMISSIONS` in `autoscaler/kube.py`; a test keeps them equal).
- Node headroom: the PriorityClass `peakscale-headroom` (value -10, never preempts) for the placeholder
  pods that hold node room ahead of a raise (a ScalingPolicy's `nodeHeadroom`).
- Two replicas by default; only the Lease holder writes. Non-root, read-only root filesystem, no privilege
  escalation, all capabilities dropped.
- `dashboards/peakscale.json` is a Grafana dashboard (forecast, planned, floor and actual replicas per
  policy, scaling actions annotated, node-headroom pods planned vs running, cycle time, errors), shipped as a ConfigMap for Grafana's sidecar.

## Values

| key | default | description |
|---|---|---|
"""


def rows(text: str) -> list[tuple[str, str, str]]:
    values = yaml.safe_load(text)
    out = []
    stack: list[tuple[int, str]] = []
    pending = ""
    for line in text.splitlines():
        comment = re.match(r"^\s*# -- (.*)$", line)
        if comment:
            pending = comment.group(1)
            continue
        key = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if not key:
            continue
        indent = len(key.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.group(2)))
        if pending:
            path = ".".join(k for _, k in stack)
            node = values
            for part in path.split("."):
                node = node[part]
            out.append((path, json.dumps(node), pending))
            pending = ""
    return out


def render() -> str:
    text = (HERE / "values.yaml").read_text()
    body = "".join(f"| `{k}` | `{d}` | {desc} |\n" for k, d, desc in rows(text))
    return INTRO + body


if __name__ == "__main__":
    (HERE / "README.md").write_text(render())
    sys.stdout.write("README.md written\n")
