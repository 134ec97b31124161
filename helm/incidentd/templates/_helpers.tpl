{{/* Name of the chart, overridable. */}}
{{- define "incidentd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (release-based, 63 chars max for DNS). */}}
{{- define "incidentd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "incidentd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "incidentd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incidentd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "incidentd.labels" -}}
helm.sh/chart: {{ include "incidentd.chart" . }}
{{ include "incidentd.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "incidentd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "incidentd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding the auth token, or "" when auth is off. */}}
{{- define "incidentd.authSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else if .Values.auth.token }}
{{- printf "%s-auth" (include "incidentd.fullname" .) }}
{{- end }}
{{- end }}

{{/* PVC name for store.kind=local with persistence. */}}
{{- define "incidentd.pvcName" -}}
{{- default (printf "%s-data" (include "incidentd.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* True ("true") when the chart itself should create the data PVC. */}}
{{- define "incidentd.createPvc" -}}
{{- if and (eq .Values.store.kind "local") .Values.persistence.enabled (not .Values.persistence.existingClaim) }}true{{- end }}
{{- end }}

{{/*
A TOML basic string. JSON string escapes are a subset of TOML's (Go's
encoder never emits "\/"), so toJson gives a valid, safely quoted value.
*/}}
{{- define "incidentd.tomlString" -}}
{{- . | toString | toJson }}
{{- end }}

{{/*
Refuses values that would deploy something broken. Included by the
workload template, so `helm template`/`install` exits nonzero with the
message.
*/}}
{{- define "incidentd.validate" -}}
{{- $v := .Values }}
{{- $replicas := int $v.replicaCount }}
{{- $kafka := ne (trim (toString $v.kafka.brokers)) "" }}
{{- if not (has $v.store.kind (list "local" "redis")) }}
{{- fail (printf "store.kind must be \"local\" or \"redis\", got %q" (toString $v.store.kind)) }}
{{- end }}
{{- if lt $replicas 1 }}
{{- fail "replicaCount must be at least 1" }}
{{- end }}
{{- if and (gt $replicas 1) (eq $v.store.kind "local") }}
{{- fail (printf "replicaCount=%d with store.kind=local: the local store is a file in one pod's data dir, so it allows a single replica only. Set store.kind=redis (and kafka.brokers) to run several replicas." $replicas) }}
{{- end }}
{{- if and (gt $replicas 1) (not $kafka) }}
{{- fail (printf "replicaCount=%d without kafka.brokers: without Kafka every replica would own every shard. Set kafka.brokers (and store.kind=redis) or replicaCount=1." $replicas) }}
{{- end }}
{{- if and $kafka (ne $v.store.kind "redis") }}
{{- fail "kafka.brokers is set but store.kind is not \"redis\": with Kafka, shards move between replicas, so their snapshots must live in Redis." }}
{{- end }}
{{- if and (eq $v.store.kind "redis") (not $v.redis.url) }}
{{- fail "store.kind=redis needs redis.url" }}
{{- end }}
{{- if lt (int $v.shards) 1 }}
{{- fail "shards must be at least 1 (it is the partition count of the keyed topic)" }}
{{- end }}
{{- $shutdown := int $v.server.shutdownTimeoutSeconds }}
{{- $handover := int $v.kafka.handoverTimeoutSeconds }}
{{- $grace := int $v.terminationGracePeriodSeconds }}
{{- if or (lt $shutdown 1) (lt $handover 1) (lt (int $v.kafka.sessionTimeoutSeconds) 1) }}
{{- fail "server.shutdownTimeoutSeconds, kafka.handoverTimeoutSeconds and kafka.sessionTimeoutSeconds must be at least 1" }}
{{- end }}
{{- if le $grace (add $shutdown $handover) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than server.shutdownTimeoutSeconds (%d) + kafka.handoverTimeoutSeconds (%d) = %d, or Kubernetes kills the pod before it has stored its shards" $grace $shutdown $handover (add $shutdown $handover)) }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set only one of minAvailable and maxUnavailable (null the other)" }}
{{- end }}
{{- if and $v.auth.token (regexMatch "[\"\\\\[:space:]]" $v.auth.token) }}
{{- fail "auth.token must not contain quotes, backslashes or whitespace" }}
{{- end }}
{{- range $v.kafka.sources }}
{{- if not (has .format (list "native" "alertmanager_webhook" "pagerduty")) }}
{{- fail (printf "kafka.sources: topic %q has format %q; expected native, alertmanager_webhook or pagerduty" (toString .topic) (toString .format)) }}
{{- end }}
{{- end }}
{{- end }}
