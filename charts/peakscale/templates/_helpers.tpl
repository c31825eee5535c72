{{- define "peakscale.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "peakscale.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "peakscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "peakscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "peakscale.labels" -}}
{{ include "peakscale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: peakscale
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "peakscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "peakscale.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "peakscale.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- $base := printf "%s/%s" .Values.image.registry .Values.image.repository | trimPrefix "/" -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" $base $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $base $tag -}}
{{- end -}}
{{- end -}}

{{/* The rules of the controller's API_PERMISSIONS (autoscaler/kube.py) that act on watched namespaces. */}}
{{- define "peakscale.watchRules" -}}
- apiGroups: [peakscale.io]
  resources: [scalingpolicies]
  verbs: [get, list, update]
- apiGroups: [peakscale.io]
  resources: [promotionevents]
  verbs: [get, list]
- apiGroups: [peakscale.io]
  resources: [scalingpolicies/status, promotionevents/status]
  verbs: [get, update]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, update]
- apiGroups: [apps]
  resources: [deployments/scale, statefulsets/scale]
  verbs: [get, update]
# the targets' pod templates, and the node-headroom placeholders (in each target's namespace,
# charged to its quota; the controller touches only those it labels as its own)
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, create, update, delete]
- apiGroups: [postgresql.cnpg.io]
  resources: [clusters/scale]
  verbs: [get, update]
# node headroom and preflight: the targets' pod templates and ready counts, quotas, PDBs (read only)
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get]
- apiGroups: [postgresql.cnpg.io]
  resources: [clusters]
  verbs: [get]
- apiGroups: [""]
  resources: [resourcequotas]
  verbs: [list]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# a resharding tier's reshard step: a Job in the policy's namespace, running the controller's own
# image as the ServiceAccount the policy names (never the controller's); finished ones go by TTL
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, create]
{{- end -}}

{{/* The namespaces the controller watches when not cluster-wide: watchNamespaces, else the release's. */}}
{{- define "peakscale.watchedNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson .Values.watchNamespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* Names of cluster-scoped or shared objects, per release, so that two releases never collide:
the PriorityClass of node-headroom placeholders (release "peakscale": peakscale-headroom, the
ScalingPolicy's default) and the leader-election Lease (release "peakscale": peakscale-controller,
the controller's default). */}}
{{- define "peakscale.priorityClassName" -}}
{{- .Values.nodeHeadroom.priorityClass.name | default (printf "%s-headroom" (include "peakscale.fullname" .)) -}}
{{- end -}}

{{- define "peakscale.leaseName" -}}
{{- printf "%s-controller" (include "peakscale.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
