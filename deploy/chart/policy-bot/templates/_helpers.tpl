{{/* Names and labels, the Helm way. */}}
{{- define "policy-bot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "policy-bot.fullname" -}}
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

{{- define "policy-bot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "policy-bot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "policy-bot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "policy-bot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: policy-bot
{{- end }}

{{- define "policy-bot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "policy-bot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The checks that stop a broken installation at render time, with what to do instead.
Included by the Deployment (and so by every `helm template` / `helm install`).
*/}}
{{- define "policy-bot.validate" -}}
{{- $type := .Values.store.type }}
{{- if not (has $type (list "sqlite" "postgresql")) }}
{{- fail (printf "store.type must be sqlite or postgresql, not %q" $type) }}
{{- end }}
{{- if and (eq $type "sqlite") (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount is %d but store.type is sqlite: SQLite is a file on one volume and cannot be shared by several replicas. Set store.type=postgresql (with store.postgresql.existingSecret) to run more than one replica, or set replicaCount=1." (int .Values.replicaCount)) }}
{{- end }}
{{- if lt (int .Values.replicaCount) 1 }}
{{- fail "replicaCount must be at least 1" }}
{{- end }}
{{- if hasKey .Values.config "store" }}
{{- fail "config.store is managed by the chart: use store.type and store.sqlite.path, or store.postgresql.existingSecret for a PostgreSQL URL (it carries a password, so it never goes into the ConfigMap)" }}
{{- end }}
{{- if and (eq $type "postgresql") (not (include "policy-bot.storeSecret" .)) }}
{{- fail "store.type is postgresql: set store.postgresql.existingSecret (or secrets.existingSecret) to the Secret holding the PostgreSQL URL" }}
{{- end }}
{{- if not .Values.secrets.existingSecret }}
{{- fail "secrets.existingSecret must name the Secret holding SLACK_BOT_TOKEN and the other tokens (deploy/README.md, step 2)" }}
{{- end }}
{{- if not (hasKey .Values.secrets.keys "SLACK_BOT_TOKEN") }}
{{- fail "secrets.keys.SLACK_BOT_TOKEN is required: the bot cannot talk to Slack without its token" }}
{{- end }}
{{- end }}

{{- define "policy-bot.storeSecret" -}}
{{- default .Values.secrets.existingSecret .Values.store.postgresql.existingSecret }}
{{- end }}

{{/* The config file: `config` plus what the chart owns (port, SQLite path). */}}
{{- define "policy-bot.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $server := merge (dict "port" (int .Values.containerPort)) (default (dict) $config.server) }}
{{- $_ := set $server "port" (int .Values.containerPort) }}
{{- $_ := set $config "server" $server }}
{{- if eq .Values.store.type "sqlite" }}
{{- $_ := set $config "store" (dict "url" (printf "sqlite:///%s" .Values.store.sqlite.path)) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Whether any environment is the cluster the bot runs in (then it needs its token). */}}
{{- define "policy-bot.inCluster" -}}
{{- $found := false }}
{{- range .Values.config.environments }}
{{- if .in_cluster }}{{ $found = true }}{{ end }}
{{- end }}
{{- if $found }}true{{ end }}
{{- end }}

{{/* The managed-cluster RBAC's namespaces. */}}
{{- define "policy-bot.exceptionsNamespace" -}}
{{- default (dig "exceptions" "namespace" "kyverno-exceptions" .Values.config) .Values.rbac.managedCluster.exceptionsNamespace }}
{{- end }}

{{- define "policy-bot.kyvernoNamespace" -}}
{{- $found := "" }}
{{- range (dig "backup" "helm_releases" (list) .Values.config) }}
{{- if and (eq .name "kyverno") (not $found) }}{{ $found = .namespace }}{{ end }}
{{- end }}
{{- default (default "kyverno" $found) .Values.rbac.managedCluster.kyvernoNamespace }}
{{- end }}

{{- define "policy-bot.helmReleaseNamespaces" -}}
{{- $namespaces := list (include "policy-bot.kyvernoNamespace" .) }}
{{- range (dig "backup" "helm_releases" (list) .Values.config) }}
{{- $namespaces = append $namespaces .namespace }}
{{- end }}
{{- $namespaces = concat $namespaces .Values.rbac.managedCluster.helmReleaseNamespaces | uniq | sortAlpha }}
{{- join "," $namespaces }}
{{- end }}

{{- define "policy-bot.rbacSubjects" -}}
{{- if .Values.rbac.managedCluster.subjects }}
{{- toYaml .Values.rbac.managedCluster.subjects }}
{{- else }}
- kind: ServiceAccount
  name: {{ include "policy-bot.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
{{- end }}
