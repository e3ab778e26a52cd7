{{/*
Names, labels and the pieces every role's pod shares. Environment variables defined here are
attributed by tests/deploy_flags.rs to each role file that includes the definition.
*/}}

{{- define "sn1.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sn1.fullname" -}}
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

{{/* "<fullname>-<suffix>", within the 63 characters of a DNS label. */}}
{{- define "sn1.component" -}}
{{- printf "%s-%s" (include "sn1.fullname" .root | trunc (int (sub 62 (len .name)))) .name | trimSuffix "-" }}
{{- end }}

{{- define "sn1.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sn1.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sn1.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sn1.labels" -}}
helm.sh/chart: {{ include "sn1.chart" .root }}
{{ include "sn1.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: sn1-gateway
{{- end }}

{{- define "sn1.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "sn1.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sn1.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The chart's own Secret (URLs and a development API key given as plain values). */}}
{{- define "sn1.connectionsSecretName" -}}
{{- include "sn1.component" (dict "root" . "name" "connections") }}
{{- end }}

{{- define "sn1.hasConnectionsSecret" -}}
{{- if or (and (not .Values.nats.existingSecret) .Values.nats.url) (and (not .Values.postgres.existingSecret) .Values.postgres.url) (and (not .Values.api.auth.existingSecret) (or .Values.api.auth.key .Values.api.auth.keyIdSecret)) }}true{{ end }}
{{- end }}

{{- define "sn1.postgresConfigured" -}}
{{- if or .Values.postgres.existingSecret .Values.postgres.url }}true{{ end }}
{{- end }}

{{/*
NATS_URL of one role (`role`: api, worker or syncer) from the configured Secret: with
nats.roleUsers.enabled, the role's own key (its own NATS user, whose permissions are in
files/nats-permissions.json); otherwise the shared key.
*/}}
{{- define "sn1.env.nats" -}}
{{- $nats := .root.Values.nats }}
- name: NATS_URL
  valueFrom:
    secretKeyRef:
      {{- if $nats.existingSecret }}
      name: {{ $nats.existingSecret }}
      {{- if $nats.roleUsers.enabled }}
      key: {{ index $nats.roleUsers.keys .role }}
      {{- else }}
      key: {{ $nats.existingSecretKey }}
      {{- end }}
      {{- else }}
      name: {{ include "sn1.connectionsSecretName" .root }}
      key: nats-url
      {{- end }}
{{- end }}

{{/* The NATS permissions of every role for nats.prefix (files/nats-permissions.json). */}}
{{- define "sn1.natsPermissions" -}}
{{- $stream := .Values.nats.prefix | upper | replace "-" "_" }}
{{- .Files.Get "files/nats-permissions.json" | replace "{prefix}" .Values.nats.prefix | replace "{STREAM}" $stream | replace "{consumer}" (lower $stream) }}
{{- end }}

{{/* DATABASE_URL from the configured Secret (`secretName` overrides the chart's own; `key`,
when set, overrides existingSecretKey: the api's own role). */}}
{{- define "sn1.env.database" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if .root.Values.postgres.existingSecret }}
      name: {{ .root.Values.postgres.existingSecret }}
      key: {{ default .root.Values.postgres.existingSecretKey .key }}
      {{- else }}
      name: {{ default (include "sn1.connectionsSecretName" .root) .secretName }}
      key: database-url
      {{- end }}
{{- end }}

{{/* OpenTelemetry export as ConfigMap data (the standard OTEL_* variables): nothing without an
endpoint, so the binary exports nothing. */}}
{{- define "sn1.otel.env" -}}
{{- with .Values.otel }}
{{- if .endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .endpoint | quote }}
{{- end }}
{{- if .tracesEndpoint }}
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {{ .tracesEndpoint | quote }}
{{- end }}
{{- if or .endpoint .tracesEndpoint }}
OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf"
OTEL_TRACES_SAMPLER: {{ .sampler | quote }}
{{- if .samplerArg }}
OTEL_TRACES_SAMPLER_ARG: {{ .samplerArg | quote }}
{{- end }}
{{- if .resourceAttributes }}
OTEL_RESOURCE_ATTRIBUTES: {{ .resourceAttributes | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* OTEL_EXPORTER_OTLP_HEADERS from otel.headersSecret (it may hold a vendor's API key). */}}
{{- define "sn1.env.otelHeaders" -}}
{{- if .Values.otel.headersSecret }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.otel.headersSecret }}
      key: {{ .Values.otel.headersSecretKey }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every role: service account, security, scheduling. */}}
{{- define "sn1.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
serviceAccountName: {{ include "sn1.serviceAccountName" .root }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Extra environment variables of a role as ConfigMap data (string values). */}}
{{- define "sn1.extraEnvData" -}}
{{- range $name, $value := . }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Stops the render with one message naming every configuration problem the schema cannot see.
*/}}
{{- define "sn1.validate" -}}
{{- $problems := list }}
{{- if not (or .Values.nats.existingSecret .Values.nats.url) }}
{{- $problems = append $problems "nats: set nats.existingSecret (a Secret holding the NATS URL) or nats.url" }}
{{- end }}
{{- if not (or .Values.api.auth.existingSecret .Values.api.auth.key .Values.api.auth.insecureNoAuth) }}
{{- $problems = append $problems "api.auth: set api.auth.existingSecret (a Secret holding the API key), or api.auth.insecureNoAuth=true for an open API" }}
{{- end }}
{{- if and (not .Values.api.auth.insecureNoAuth) (not .Values.api.auth.existingSecret) .Values.api.auth.key (not .Values.api.auth.keyIdSecret) }}
{{- $problems = append $problems "api.auth: with api.auth.key, set api.auth.keyIdSecret too (KEY_ID_SECRET: keys the ids of API keys in the audit log; e.g. openssl rand -hex 32)" }}
{{- end }}
{{- $needsPostgres := or .Values.migrations.enabled (eq .Values.metagraph.source "syncer") }}
{{- if and $needsPostgres (not (include "sn1.postgresConfigured" .)) }}
{{- $problems = append $problems "postgres: set postgres.existingSecret (a Secret holding the Postgres URL) or postgres.url (needed by the migrations and the syncer)" }}
{{- end }}
{{- if and (eq .Values.metagraph.source "file") (not (or .Values.metagraph.file.existingConfigMap .Values.metagraph.file.json)) }}
{{- $problems = append $problems "metagraph.file: with metagraph.source=file, set metagraph.file.existingConfigMap or metagraph.file.json" }}
{{- end }}
{{- if and (ne .Values.worker.hotkey.source "ephemeral") (not .Values.worker.hotkey.existingSecret) }}
{{- $problems = append $problems "worker.hotkey: set worker.hotkey.existingSecret (the Secret holding the validator hotkey)" }}
{{- end }}
{{- if $problems }}
{{- fail (printf "invalid values:\n  - %s" (join "\n  - " $problems)) }}
{{- end }}
{{- end }}
