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
Bytes in a Kubernetes memory quantity, as a decimal integer string (turn it
into a number with `float64`). Takes (dict "name" <value's name, for the
message> "value" <the quantity>). Accepts what Kubernetes accepts: a number
with an optional suffix, Ki Mi Gi Ti Pi Ei (powers of 1024), k M G T P E
(powers of 1000) or m (thousandths), or an exponent (1e9, 1.5E+9; a YAML
number such as 1073741824 reads 1.073741824e+09 here, exactly); fractional
bytes are rounded. Anything else fails with a message, so a typo such as
"1GB" is never taken for a size.
*/}}
{{- define "incidentd.memoryBytes" -}}
{{- $text := trim (toString .value) }}
{{- $pattern := `^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[kMGTPEm])?$` }}
{{- if not (regexMatch $pattern $text) }}
{{- fail (printf "%s=%q is not a Kubernetes memory quantity: expected a number of bytes with an optional suffix Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024), k, M, G, T, P, E (powers of 1000) or an exponent, such as 1Gi, 512Mi, 1G or 1e9" .name $text) }}
{{- end }}
{{- $suffix := regexReplaceAll $pattern $text "${2}" }}
{{- $bytes := 0.0 }}
{{- if regexMatch "^[eE][+-]?[0-9]+$" $suffix }}
{{- $bytes = float64 $text }}
{{- else }}
{{- $scale := dict "" 1 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 }}
{{- $bytes = mulf (float64 (regexReplaceAll $pattern $text "${1}")) (get $scale $suffix) }}
{{- end }}
{{- printf "%.0f" (round $bytes 0) }}
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
{{- if and (eq $v.store.kind "local") (ne $v.store.writeFormats "current") }}
{{- fail (printf "store.writeFormats=%q with store.kind=local: older formats are for Redis replicas of two builds side by side; the local store has one pod and is replaced with Recreate. Leave it \"current\"." $v.store.writeFormats) }}
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
{{- /* Was the documented place before the chart rendered the table. */}}
{{- if regexMatch `(?m)^[ \t]*\[[ \t]*engine[ \t]*\.[ \t]*passivation[ \t]*\]` (toString $v.extraConfig) }}
{{- fail "extraConfig has an [engine.passivation] table, which the chart renders itself (TOML allows a table only once): set its keys through the values instead: max_resident as engine.maxResidentPerShard, enabled, idle_after, timer_horizon and check_interval as engine.passivation.enabled, .idleAfter, .timerHorizon and .checkInterval" }}
{{- end }}
{{- $maxResident := int64 $v.engine.maxResidentPerShard }}
{{- if lt $maxResident 1 }}
{{- fail "engine.maxResidentPerShard must be at least 1" }}
{{- end }}
{{- /*
With passivation on, a pod may run shards x maxResidentPerShard incident
actors of ~13 KiB each (13,312 B; 12,985 B measured in benches/README.md):
a pod can own every shard, as when it is the only replica left. Those
alone must fit the memory limit. With passivation off nothing caps the
actors and there is nothing to check.
*/}}
{{- $memory := (default dict (default dict $v.resources).limits).memory }}
{{- if and (not (kindIs "invalid" $memory)) (ne (toString $memory) "") }}
{{- $limit := include "incidentd.memoryBytes" (dict "name" "resources.limits.memory" "value" $memory) | float64 }}
{{- $shards := int64 $v.shards }}
{{- $actorBytes := 13312 }}
{{- $actors := mulf $shards $maxResident $actorBytes }}
{{- if and $v.engine.passivation.enabled (gt $actors $limit) }}
{{- $shown := toString $memory }}
{{- if kindIs "float64" $memory }}
{{- $shown = printf "%.0f" $memory }}
{{- end }}
{{- $fits := floor (divf $limit (mulf $shards $actorBytes)) }}
{{- fail (printf "engine.maxResidentPerShard=%d does not fit resources.limits.memory=%s (%.0f MiB): in an alert storm a pod owning all %d shards runs up to %d x %d incident actors of ~13 KiB = %.0f MiB and would be OOM-killed. Lower engine.maxResidentPerShard (at most %.0f passes this check, but the limit must also hold ~200 MiB plus ~2.5 KB per live incident; see the chart's README) or shards, or raise resources.limits.memory." $maxResident $shown (divf $limit 1048576) $shards $shards $maxResident (divf $actors 1048576) $fits) }}
{{- end }}
{{- end }}
{{- range $v.kafka.sources }}
{{- if not (has .format (list "native" "alertmanager_webhook" "pagerduty")) }}
{{- fail (printf "kafka.sources: topic %q has format %q; expected native, alertmanager_webhook or pagerduty" (toString .topic) (toString .format)) }}
{{- end }}
{{- end }}
{{- end }}
