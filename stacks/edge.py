"""LiveEdge: SRS live streaming, an origin tier and an edge tier that pulls from it.

Hosts publish to the origins (RTMP 1935, WebRTC 8000/udp); viewers play from the edges (HTTP-FLV
and HLS on 8080, RTMP, WebRTC), which pull each stream from an origin on first demand
(``cluster { mode remote; origin ...; }``). The edges sit behind a LoadBalancer and an HPA on
viewer connections (``srs_clients`` from SRS's own exporter), which peakscale raises before a peak
(``hpa-floor``). Scale-in must never cut a live viewer: SRS quits gracefully on SIGTERM
(``force_grace_quit``), a preStop hook first lets the endpoints drop the pod, and the termination
grace covers the drain.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from autoscaler.core.durations import parse_duration_s
from stacks.config import EdgeConfig, StackConfig
from autoscaler.core.resources import TargetRef
from stacks.contract import ScaleContract, contract_of
from stacks.workload import disruption_budget, labels, metrics_endpoint, selector, spread, tcp_probe

RTMP, HTTP, API, WEBRTC, EXPORTER = 1935, 8080, 1985, 8000, 9972
SRS_UID = 1000


#: SRS writes only here (the root filesystem is read-only): its pid file, and HLS segments
RUN_DIR, HTML_DIR = "/srs-run", "/srs-html"


def _common_conf(grace_final_ms: int, role: str) -> list[str]:
    return [
        f"listen {RTMP};",
        "max_connections 3000;",
        "daemon off;",
        "srs_log_tank console;",
        f"pid {RUN_DIR}/srs.pid;",
        "ff_log_dir /dev/null;",
        # SIGTERM quits gracefully: stop accepting, let viewers finish, then exit
        "force_grace_quit on;",
        "grace_start_wait 5000;",
        f"grace_final_wait {grace_final_ms};",
        f"http_api {{ enabled on; listen {API}; }}",
        f"http_server {{ enabled on; listen {HTTP}; dir {HTML_DIR}; }}",
        f"rtc_server {{ enabled on; listen {WEBRTC}; candidate $CANDIDATE; }}",
        f"exporter {{ enabled on; listen {EXPORTER}; label {role}; tag {role}; }}",
        "stats { network 0; }",
    ]


#: the prometheus-adapter rule that serves SRS's viewer connections as the Pods metric srs_clients
ADAPTER_RULE = {
    "seriesQuery": 'srs_clients{namespace!="",pod!=""}',
    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
    "name": {"matches": "^srs_clients$", "as": "srs_clients"},
    "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
}


def render_origin_conf(coworkers: list[str], on_publish: str | None = None) -> str:
    hooks = [f"    http_hooks {{ enabled on; on_publish {on_publish}; }}"] if on_publish else []
    lines = _common_conf(3200, "origin") + [
        "vhost __defaultVhost__ {",
        "    cluster {",
        "        origin_cluster on;",
        f"        coworkers {' '.join(coworkers)};",
        "    }",
        *hooks,
        "    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }",
        f"    hls {{ enabled on; hls_fragment 2; hls_window 10; hls_path {HTML_DIR}; }}",
        "    rtc { enabled on; rtmp_to_rtc on; rtc_to_rtmp on; }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_edge_conf(origins: list[str], grace_final_ms: int) -> str:
    lines = _common_conf(grace_final_ms, "edge") + [
        "vhost __defaultVhost__ {",
        "    cluster {",
        "        mode remote;",
        f"        origin {' '.join(origins)};",
        "    }",
        "    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }",
        "    rtc { enabled on; rtmp_to_rtc on; }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _container_security() -> dict[str, Any]:
    # a read-only root filesystem: SRS writes only to the emptyDirs at RUN_DIR and HTML_DIR
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


class LiveEdge(pulumi.ComponentResource):
    def __init__(self, name: str, config: EdgeConfig, stack: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("peakscale:stacks:LiveEdge", name, None, opts)
        self.config, self.stack, self.name = config, stack, name
        self.ns = stack.namespace
        self.base = base = config.name
        self.child = pulumi.ResourceOptions(parent=self)
        self.drain_s = parse_duration_s(config.drain, field="peakscale:edge.drain")
        self.origin_labels = labels(f"{base}-origin", "origin", "edge", stack.environment)
        self.edge_labels = labels(f"{base}-edge", "edge", "edge", stack.environment)
        self.origin_match, self.edge_match = selector(self.origin_labels), selector(self.edge_labels)
        self.origin_headless = f"{base}-origin-headless"
        self.edge_name = f"{base}-edge"

        self._config()
        self._origin()
        edge_deploy = self._edge()
        self.edge_service = self._edge_service()
        self._hpa(edge_deploy)
        self._origin_hls()
        self._metrics_adapter()
        disruption_budget(f"{base}-origin", self.ns, self.origin_match, self.origin_labels, self)
        disruption_budget(self.edge_name, self.ns, self.edge_match, self.edge_labels, self, max_unavailable=1)
        if config.metrics.enabled:
            for component, match, all_labels in (("origin", self.origin_match, self.origin_labels), ("edge", self.edge_match, self.edge_labels)):
                metrics_endpoint(f"{name}-{component}", f"{base}-{component}", self.ns, match, all_labels, EXPORTER, config.metrics, self)
        self.contract = self._contract()
        self.ingest_url = f"rtmp://{base}-origin.{self.ns}.svc.cluster.local:{RTMP}/live"
        self.playback_url = self.edge_service.status.apply(_playback_url)
        self.register_outputs({"ingestUrl": self.ingest_url, "playbackUrl": self.playback_url, "scaleContract": self.contract.as_output()})

    def _config(self) -> None:
        """origin.conf and edge.conf, in one ConfigMap: the edges pull from every origin."""
        hosts = [f"{self.base}-origin-{i}.{self.origin_headless}.{self.ns}.svc.cluster.local" for i in range(self.config.origins)]
        self.origin_conf = render_origin_conf([f"{h}:{API}" for h in hosts], on_publish=self.config.on_publish)
        self.edge_conf = render_edge_conf([f"{h}:{RTMP}" for h in hosts], grace_final_ms=max(3200, (self.drain_s - 15) * 1000))
        k8s.core.v1.ConfigMap(
            f"{self.name}-config",
            metadata={"name": f"{self.base}-srs-config", "namespace": self.ns, "labels": self.edge_labels},
            data={"origin.conf": self.origin_conf, "edge.conf": self.edge_conf},
            opts=self.child,
        )

    def _container(self, conf: str, resources: dict[str, Any], *, drain: bool) -> dict[str, Any]:
        """SRS with ``conf``; with ``drain``, a preStop that lets the endpoints drop the pod first."""
        ports = [
            {"name": "rtmp", "containerPort": RTMP, "protocol": "TCP"},
            {"name": "http", "containerPort": HTTP, "protocol": "TCP"},
            {"name": "api", "containerPort": API, "protocol": "TCP"},
            {"name": "metrics", "containerPort": EXPORTER, "protocol": "TCP"},
            {"name": "webrtc", "containerPort": WEBRTC, "protocol": "UDP"},
        ]
        container: dict[str, Any] = {
            "name": "srs", "image": self.config.image.ref, "imagePullPolicy": self.config.image.pull_policy,
            "command": ["./objs/srs", "-c", f"/usr/local/srs/conf/peakscale/{conf}"],
            # the WebRTC candidate viewers connect to: the LoadBalancer's reserved address when given
            "env": [{"name": "CANDIDATE", "value": self.config.public_address} if self.config.public_address else {"name": "CANDIDATE", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": ports,
            "resources": resources,
            "readinessProbe": {"httpGet": {"path": "/api/v1/versions", "port": "api"}, "periodSeconds": 5, "failureThreshold": 2},
            "livenessProbe": tcp_probe("rtmp", initial_s=15),
            "securityContext": _container_security(),
            "volumeMounts": [
                {"name": "config", "mountPath": "/usr/local/srs/conf/peakscale"},
                {"name": "run", "mountPath": RUN_DIR},
                {"name": "html", "mountPath": HTML_DIR},
            ],
        }  # fmt: skip
        if drain:
            # let the endpoint controller drop this pod before SRS stops accepting
            container["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 10"]}}}
        return container

    def _pod(self, match: dict[str, str], all_labels: dict[str, str], container: dict[str, Any], grace_s: int) -> dict[str, Any]:
        return {
            "metadata": {"labels": all_labels, "annotations": {"prometheus.io/port": str(EXPORTER)}},
            "spec": {
                "securityContext": {"runAsUser": SRS_UID, "runAsGroup": SRS_UID, "runAsNonRoot": True},
                "terminationGracePeriodSeconds": grace_s,
                "containers": [container],
                "volumes": [
                    {"name": "config", "configMap": {"name": f"{self.base}-srs-config"}},
                    {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                    {"name": "html", "emptyDir": {"sizeLimit": "2Gi"}},
                ],
                **spread(match, self.stack),
            },
        }

    def _origin(self) -> None:
        """The origins: a StatefulSet hosts publish to, behind a headless Service (for the edges) and a ClusterIP one."""
        ns, base, match, all_labels = self.ns, self.base, self.origin_match, self.origin_labels
        k8s.core.v1.Service(
            f"{self.name}-origin-headless",
            metadata={"name": self.origin_headless, "namespace": ns, "labels": all_labels},
            spec={"clusterIP": "None", "publishNotReadyAddresses": True, "selector": match, "ports": [{"name": "rtmp", "port": RTMP}, {"name": "api", "port": API}]},
            opts=self.child,
        )
        ports = [{"name": "rtmp", "port": RTMP, "targetPort": "rtmp"}, {"name": "http", "port": HTTP, "targetPort": "http"}, {"name": "api", "port": API, "targetPort": "api"}]
        k8s.core.v1.Service(
            f"{self.name}-origin-svc",
            metadata={"name": f"{base}-origin", "namespace": ns, "labels": all_labels},
            spec={"type": "ClusterIP", "selector": match, "ports": ports},
            opts=self.child,
        )
        container = self._container("origin.conf", self.config.origin_resources.as_k8s(), drain=False)
        k8s.apps.v1.StatefulSet(
            f"{self.name}-origin",
            metadata={"name": f"{base}-origin", "namespace": ns, "labels": all_labels},
            spec={
                "replicas": self.config.origins, "serviceName": self.origin_headless, "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": match}, "template": self._pod(match, all_labels, container, 30),
            },
            opts=self.child,
        )  # fmt: skip

    def _edge(self) -> k8s.apps.v1.Deployment:
        """The edges viewers play from: a Deployment whose replica count the HPA owns."""
        container = self._container("edge.conf", self.config.edge_resources.as_k8s(), drain=True)
        return k8s.apps.v1.Deployment(
            f"{self.name}-edge",
            metadata={"name": self.edge_name, "namespace": self.ns, "labels": self.edge_labels},
            spec={
                "replicas": self.config.scaling.min_replicas,
                "selector": {"matchLabels": self.edge_match},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": self._pod(self.edge_match, self.edge_labels, container, self.drain_s),
            },
            # the HPA (and peakscale through its floor) owns the replica count
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["spec.replicas"]),
        )

    def _edge_service(self) -> k8s.core.v1.Service:
        """The viewers' LoadBalancer (client IPs kept: externalTrafficPolicy Local)."""
        ports = [
            {"name": "rtmp", "port": RTMP, "targetPort": "rtmp", "protocol": "TCP"},
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "webrtc", "port": WEBRTC, "targetPort": "webrtc", "protocol": "UDP"},
        ]
        return k8s.core.v1.Service(
            f"{self.name}-edge-lb",
            metadata={"name": self.edge_name, "namespace": self.ns, "labels": self.edge_labels, "annotations": dict(self.config.load_balancer_annotations)},
            spec={
                "type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": self.edge_match, "ports": ports,
                **({"loadBalancerIP": self.config.public_address} if self.config.public_address else {}),
            },
            opts=self.child,
        )  # fmt: skip

    def _origin_hls(self) -> None:
        """HLS as the origins write it, for a CDN or an ingress to pull: SRS edges relay RTMP,
        HTTP-FLV and WebRTC, not HLS (whose segments only the origins have)."""
        k8s.core.v1.Service(
            f"{self.name}-origin-hls",
            metadata={"name": f"{self.base}-origin-hls", "namespace": self.ns, "labels": self.origin_labels},
            spec={"type": "ClusterIP", "selector": self.origin_match, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
            opts=self.child,
        )

    def _metrics_adapter(self) -> None:
        """prometheus-adapter with the rule serving srs_clients (the edges' HPA reads nothing otherwise)."""
        adapter = self.config.metrics_adapter
        if adapter is None:
            return
        k8s.helm.v3.Release(
            f"{self.name}-metrics-adapter",
            name="prometheus-adapter",
            chart="prometheus-adapter",
            version=adapter.chart_version,
            namespace=adapter.namespace,
            create_namespace=True,
            repository_opts={"repo": "https://prometheus-community.github.io/helm-charts"},
            values={"prometheus": {"url": adapter.prometheus_url}, "rules": {"default": False, "custom": [ADAPTER_RULE]}},
            opts=self.child,
        )

    def _hpa(self, edge_deploy: k8s.apps.v1.Deployment) -> None:
        """The edges' HPA on viewer connections; peakscale raises its floor before a peak."""
        scaling = self.config.scaling
        metric = {"type": "Pods", "pods": {"metric": {"name": "srs_clients"}, "target": {"type": "AverageValue", "averageValue": str(self.config.target_connections_per_pod)}}}
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self.name}-edge-hpa",
            metadata={"name": self.edge_name, "namespace": self.ns, "labels": self.edge_labels},
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.edge_name},
                "minReplicas": max(1, scaling.min_replicas),
                "maxReplicas": scaling.max_replicas,
                "metrics": [metric],
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                    # viewers leave slowly after a show; do not chase every dip
                    "scaleDown": {"stabilizationWindowSeconds": 600, "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]},
                },
            },
            # peakscale patches minReplicas before peaks and restores it after
            opts=pulumi.ResourceOptions(parent=self, depends_on=[edge_deploy], ignore_changes=["spec.minReplicas"]),
        )

    def _contract(self) -> ScaleContract:
        return contract_of(
            self.config.scaling,
            tier="edge",
            target=TargetRef(api_version="apps/v1", kind="Deployment", name=self.edge_name),
            namespace=self.ns,
            hpa=self.edge_name,
            default_method="hpa-floor",
            metric_query=f'sum(srs_clients{{namespace="{self.ns}",service="{self.base}-edge-metrics"}})',
            reason="raise the edge HPA's floor before a peak; the HPA stays in charge above it",
        )


def _playback_url(status) -> str:
    ingress = ((status or {}).get("load_balancer") or (status or {}).get("loadBalancer") or {}).get("ingress") if isinstance(status, dict) else None
    if not ingress and status is not None and not isinstance(status, dict):
        lb = getattr(status, "load_balancer", None)
        ingress = getattr(lb, "ingress", None) if lb else None
    if ingress:
        first = ingress[0]
        host = (first.get("hostname") or first.get("ip")) if isinstance(first, dict) else (first.hostname or first.ip)
        return f"http://{host}/live/<stream>.flv"
    return "pending: the LoadBalancer has no address yet"
