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

import pulumi
import pulumi_kubernetes as k8s

from autoscaler.core.durations import parse_duration_s
from stacks.config import EdgeConfig, StackConfig
from stacks.contract import ScaleContract, TargetRef
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


def render_origin_conf(coworkers: list[str]) -> str:
    lines = _common_conf(3200, "origin") + [
        "vhost __defaultVhost__ {",
        "    cluster {",
        "        origin_cluster on;",
        f"        coworkers {' '.join(coworkers)};",
        "    }",
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


def _container_security() -> dict:
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
        ns = stack.namespace
        base = config.name
        child = pulumi.ResourceOptions(parent=self)
        drain_s = parse_duration_s(config.drain, field="peakscale:edge.drain")
        origin_labels = labels(f"{base}-origin", "origin", "edge", stack.environment)
        edge_labels = labels(f"{base}-edge", "edge", "edge", stack.environment)
        origin_match, edge_match = selector(origin_labels), selector(edge_labels)
        origin_headless = f"{base}-origin-headless"
        origin_hosts = [f"{base}-origin-{i}.{origin_headless}.{ns}.svc.cluster.local" for i in range(config.origins)]

        self.origin_conf = render_origin_conf([f"{h}:{API}" for h in origin_hosts])
        self.edge_conf = render_edge_conf([f"{h}:{RTMP}" for h in origin_hosts], grace_final_ms=max(3200, (drain_s - 15) * 1000))
        k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": f"{base}-srs-config", "namespace": ns, "labels": edge_labels},
            data={"origin.conf": self.origin_conf, "edge.conf": self.edge_conf},
            opts=child,
        )

        def ports(with_udp: bool) -> list[dict]:
            out = [
                {"name": "rtmp", "containerPort": RTMP, "protocol": "TCP"},
                {"name": "http", "containerPort": HTTP, "protocol": "TCP"},
                {"name": "api", "containerPort": API, "protocol": "TCP"},
                {"name": "metrics", "containerPort": EXPORTER, "protocol": "TCP"},
            ]
            if with_udp:
                out.append({"name": "webrtc", "containerPort": WEBRTC, "protocol": "UDP"})
            return out

        candidate_env = [{"name": "CANDIDATE", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]

        def srs_container(conf: str, resources: dict, *, drain: bool) -> dict:
            container = {
                "name": "srs",
                "image": config.image.ref,
                "imagePullPolicy": config.image.pull_policy,
                "command": ["./objs/srs", "-c", f"/usr/local/srs/conf/peakscale/{conf}"],
                "env": candidate_env,
                "ports": ports(True),
                "resources": resources,
                "readinessProbe": {"httpGet": {"path": "/api/v1/versions", "port": "api"}, "periodSeconds": 5, "failureThreshold": 2},
                "livenessProbe": tcp_probe("rtmp", initial_s=15),
                "securityContext": _container_security(),
                "volumeMounts": [
                    {"name": "config", "mountPath": "/usr/local/srs/conf/peakscale"},
                    {"name": "run", "mountPath": RUN_DIR},
                    {"name": "html", "mountPath": HTML_DIR},
                ],
            }
            if drain:
                # let the endpoint controller drop this pod before SRS stops accepting
                container["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 10"]}}}
            return container

        def pod(match: dict, all_labels: dict, container: dict, grace_s: int) -> dict:
            return {
                "metadata": {"labels": all_labels, "annotations": {"prometheus.io/port": str(EXPORTER)}},
                "spec": {
                    "securityContext": {"runAsUser": SRS_UID, "runAsGroup": SRS_UID, "runAsNonRoot": True},
                    "terminationGracePeriodSeconds": grace_s,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{base}-srs-config"}},
                        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                        {"name": "html", "emptyDir": {"sizeLimit": "2Gi"}},
                    ],
                    **spread(match, stack),
                },
            }

        k8s.core.v1.Service(
            f"{name}-origin-headless",
            metadata={"name": origin_headless, "namespace": ns, "labels": origin_labels},
            spec={
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": origin_match,
                "ports": [{"name": "rtmp", "port": RTMP}, {"name": "api", "port": API}],
            },
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-origin-svc",
            metadata={"name": f"{base}-origin", "namespace": ns, "labels": origin_labels},
            spec={
                "type": "ClusterIP",
                "selector": origin_match,
                "ports": [
                    {"name": "rtmp", "port": RTMP, "targetPort": "rtmp"},
                    {"name": "http", "port": HTTP, "targetPort": "http"},
                    {"name": "api", "port": API, "targetPort": "api"},
                ],
            },
            opts=child,
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-origin",
            metadata={"name": f"{base}-origin", "namespace": ns, "labels": origin_labels},
            spec={
                "replicas": config.origins,
                "serviceName": origin_headless,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": origin_match},
                "template": pod(origin_match, origin_labels, srs_container("origin.conf", config.origin_resources.as_k8s(), drain=False), 30),
            },
            opts=child,
        )
        edge_name = f"{base}-edge"
        edge_deploy = k8s.apps.v1.Deployment(
            f"{name}-edge",
            metadata={"name": edge_name, "namespace": ns, "labels": edge_labels},
            spec={
                "replicas": config.scaling.min_replicas,
                "selector": {"matchLabels": edge_match},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": pod(edge_match, edge_labels, srs_container("edge.conf", config.edge_resources.as_k8s(), drain=True), drain_s),
            },
            # the HPA (and peakscale through its floor) owns the replica count
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["spec.replicas"]),
        )
        self.edge_service = k8s.core.v1.Service(
            f"{name}-edge-lb",
            metadata={
                "name": edge_name,
                "namespace": ns,
                "labels": edge_labels,
                "annotations": dict(config.load_balancer_annotations),
            },
            spec={
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "selector": edge_match,
                "ports": [
                    {"name": "rtmp", "port": RTMP, "targetPort": "rtmp", "protocol": "TCP"},
                    {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                    {"name": "webrtc", "port": WEBRTC, "targetPort": "webrtc", "protocol": "UDP"},
                ],
            },
            opts=child,
        )
        hpa_name = edge_name
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-edge-hpa",
            metadata={"name": hpa_name, "namespace": ns, "labels": edge_labels},
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": edge_name},
                "minReplicas": max(1, config.scaling.min_replicas),
                "maxReplicas": config.scaling.max_replicas,
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "srs_clients"},
                            "target": {"type": "AverageValue", "averageValue": str(config.target_connections_per_pod)},
                        },
                    }
                ],
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                    # viewers leave slowly after a show; do not chase every dip
                    "scaleDown": {"stabilizationWindowSeconds": 600, "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]},
                },
            },
            # peakscale patches minReplicas before peaks and restores it after
            opts=pulumi.ResourceOptions(parent=self, depends_on=[edge_deploy], ignore_changes=["spec.minReplicas"]),
        )
        disruption_budget(f"{base}-origin", ns, origin_match, origin_labels, self)
        disruption_budget(edge_name, ns, edge_match, edge_labels, self, max_unavailable=1)
        if config.metrics.enabled:
            for component, match, all_labels in (("origin", origin_match, origin_labels), ("edge", edge_match, edge_labels)):
                metrics_endpoint(f"{name}-{component}", f"{base}-{component}", ns, match, all_labels, EXPORTER, config.metrics, self)

        self.contract = ScaleContract(
            tier="edge",
            target=TargetRef(api_version="apps/v1", kind="Deployment", name=edge_name, namespace=ns),
            hpa=hpa_name,
            method=config.scaling.method or "hpa-floor",
            min_replicas=config.scaling.min_replicas,
            max_replicas=config.scaling.max_replicas,
            lead_time_s=config.scaling.lead_time_s,
            node_headroom=config.scaling.node_headroom.model_dump(by_alias=True) if config.scaling.node_headroom.enabled else None,
            metric_query=f'sum(srs_clients{{namespace="{ns}",service="{base}-edge-metrics"}})',
            capacity_per_replica=config.scaling.capacity_per_replica,
            reason="raise the edge HPA's floor before a peak; the HPA stays in charge above it",
        )
        self.ingest_url = f"rtmp://{base}-origin.{ns}.svc.cluster.local:{RTMP}/live"
        self.playback_url = self.edge_service.status.apply(_playback_url)
        self.register_outputs(
            {
                "ingestUrl": self.ingest_url,
                "playbackUrl": self.playback_url,
                "scaleContract": self.contract.as_output(),
            }
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
