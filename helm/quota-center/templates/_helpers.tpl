{{/* Names, labels and the pieces every workload shares. */}}

{{- define "quota-center.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name; the center's resources carry it alone. */}}
{{- define "quota-center.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A region's StatefulSet (and client Service) name. Not truncated: two regions cut to one
name would share pods' ids, so a name too long stops the render instead. 52 leaves room for the
controller-revision-hash label the StatefulSet controller derives from it. */}}
{{- define "quota-center.agentName" -}}
{{- $name := printf "%s-agent-%s" (include "quota-center.fullname" .root) .region.name -}}
{{- if gt (len $name) 52 -}}
{{- fail (printf "agent StatefulSet name %q is longer than 52 characters: shorten fullnameOverride or the region name" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "quota-center.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quota-center.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quota-center.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "quota-center.labels" -}}
helm.sh/chart: {{ include "quota-center.chart" . }}
{{ include "quota-center.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quota-center
{{- end -}}

{{- define "quota-center.centerSelectorLabels" -}}
{{ include "quota-center.selectorLabels" . }}
app.kubernetes.io/component: center
{{- end -}}

{{/* Every agent of the release, whatever its region (the center's NetworkPolicy admits them). */}}
{{- define "quota-center.agentsSelectorLabels" -}}
{{ include "quota-center.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end -}}

{{/* Call with (dict "root" $ "region" $region). */}}
{{- define "quota-center.agentSelectorLabels" -}}
{{ include "quota-center.agentsSelectorLabels" .root }}
quota-center/region: {{ .region.name }}
{{- end -}}

{{- define "quota-center.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "quota-center.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "quota-center.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* terminationGracePeriodSeconds from a shutdown block: the delay, the drain and a margin,
rounded up, so that the kubelet's SIGKILL never cuts the drain short. */}}
{{- define "quota-center.gracePeriod" -}}
{{- addf (divf .delayMs 1000) .drainGraceS .marginS | ceil | int -}}
{{- end -}}

{{/* Pod-level security context, shared by every pod. */}}
{{- define "quota-center.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context, shared by every container. */}}
{{- define "quota-center.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A probe: native gRPC on the health port (plaintext, the health service alone, whatever the
gRPC port speaks), asking for a health service name. The kubelet's gRPC probe takes a port number,
not a name. Call with (dict "port" N "service" "liveness" "timing" $values). */}}
{{- define "quota-center.probe" -}}
grpc:
  port: {{ .port | int }}
  service: {{ .service | quote }}
{{- with .timing.initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ .timing.periodSeconds }}
timeoutSeconds: {{ .timing.timeoutSeconds }}
failureThreshold: {{ .timing.failureThreshold }}
{{- end -}}

{{/* Refuses two listeners of one container on the same port (the process would fail to bind the
second one and never start). Call with (dict "ports" (dict "center.grpcPort" N ...)). */}}
{{- define "quota-center.checkPorts" -}}
{{- $seen := dict -}}
{{- range $name, $port := .ports -}}
{{- $key := toString (int $port) -}}
{{- if hasKey $seen $key -}}
{{- fail (printf "%s and %s are both port %s: each listener needs its own" (get $seen $key) $name $key) -}}
{{- end -}}
{{- $_ := set $seen $key $name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart keeps inline URLs in. */}}
{{- define "quota-center.urlsSecretName" -}}
{{- printf "%s-urls" (include "quota-center.fullname" .) -}}
{{- end -}}

{{/* The same URLs for the migration hook: a hook runs before the release's own resources exist. */}}
{{- define "quota-center.migrateUrlsSecretName" -}}
{{- printf "%s-migrate-urls" (include "quota-center.fullname" .) -}}
{{- end -}}

{{- define "quota-center.checkStores" -}}
{{- if and (not .Values.redis.url) (not .Values.redis.existingSecret) -}}
{{- fail "set redis.url or redis.existingSecret: the center's Redis" -}}
{{- end -}}
{{- if and (not .Values.postgres.url) (not .Values.postgres.existingSecret) -}}
{{- fail "set postgres.url or postgres.existingSecret: the center's PostgreSQL" -}}
{{- end -}}
{{- end -}}

{{/* The data of the URLs Secret (inline URLs only). */}}
{{- define "quota-center.urlsData" -}}
{{- with .Values.redis.url }}
redis-url: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.postgres.url }}
database-url: {{ . | b64enc | quote }}
{{- end }}
{{- end -}}

{{/* An env var from the URLs: the chart's Secret (secretName) when inline, else the existing one.
Call with (dict "env" NAME "store" .Values.redis "key" "redis-url" "secretName" NAME). */}}
{{- define "quota-center.urlEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
{{- if .store.url }}
      name: {{ .secretName }}
      key: {{ .key }}
{{- else }}
      name: {{ .store.existingSecret }}
      key: {{ .store.existingSecretKey }}
{{- end }}
{{- end -}}

{{/* Extra settings as env vars, refused when they do not carry the process's prefix or name a
variable the chart sets (two values for one variable would leave which one wins to the kubelet).
Call with (dict "settings" map "prefix" "QUOTA_CENTER_" "managed" list). */}}
{{- define "quota-center.extraEnv" -}}
{{- range $name, $value := .settings }}
{{- if not (hasPrefix $.prefix $name) }}
{{- fail (printf "extraSettings: %s is not a %s* setting" $name $.prefix) }}
{{- end }}
{{- if has $name $.managed }}
{{- fail (printf "extraSettings: %s is set by the chart from its own values" $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ include "quota-center.settingValue" $value | quote }}
{{- end }}
{{- end -}}

{{/* A value as the process parses it. Helm reads every number in values as a float, which
prints large whole numbers as 2e+06: Python's int() refuses that, so whole numbers are
printed as integers. */}}
{{- define "quota-center.settingValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- printf "%.0f" . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* Whether an access block names a file, and checks that it names one source only. */}}
{{- define "quota-center.accessSource" -}}
{{- $n := 0 -}}
{{- if .content }}{{ $n = add1 $n }}{{ end -}}
{{- if .existingConfigMap }}{{ $n = add1 $n }}{{ end -}}
{{- if .existingSecret }}{{ $n = add1 $n }}{{ end -}}
{{- if gt $n 1 -}}
{{- fail "access: set one of content, existingConfigMap and existingSecret" -}}
{{- end -}}
{{- if gt $n 0 }}true{{ end -}}
{{- end -}}

{{/* The volume of an access file. Call with (dict "access" block "configMap" NAME-when-inline). */}}
{{- define "quota-center.accessVolume" -}}
- name: access
{{- if .access.existingSecret }}
  secret:
    secretName: {{ .access.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .access.key }}
        path: {{ .access.key }}
{{- else }}
  configMap:
    name: {{ default .configMap .access.existingConfigMap }}
    items:
      - key: {{ .access.key }}
        path: {{ .access.key }}
{{- end }}
{{- end -}}
