{{/* Names and labels. */}}
{{- define "fanout.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fanout.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fanout.labels" -}}
{{ include "fanout.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "fanout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fanout.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
fanout.terminationGracePeriodSeconds: the drain budget, the one second the
worker may take beyond it, and a margin.
*/}}
{{- define "fanout.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdownTimeoutSeconds .Values.terminationGraceMarginSeconds -}}
{{- end -}}

{{/*
fanout.goMemLimit: goMemLimitPercent of resources.limits.memory, in MiB, for
GOMEMLIMIT. The limit is a Kubernetes quantity: an integer with an optional
suffix Ki, Mi, Gi, Ti, k, M, G or T.
*/}}
{{- define "fanout.goMemLimit" -}}
{{- $q := toString .Values.resources.limits.memory -}}
{{- if not (regexMatch "^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q) -}}
{{- fail (printf "resources.limits.memory: %q is not an integer with an optional suffix Ki, Mi, Gi, Ti, k, M, G or T" $q) -}}
{{- end -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $bytes := mul (int64 (regexFind "^[0-9]+" $q)) (get $units (regexReplaceAll "^[0-9]+" $q "")) -}}
{{- $mib := div (mul $bytes .Values.goMemLimitPercent) (mul 100 1048576) -}}
{{- if lt $mib 64 -}}
{{- fail (printf "resources.limits.memory: %s leaves GOMEMLIMIT at %dMiB; give the worker at least 64MiB" $q $mib) -}}
{{- end -}}
{{- printf "%dMiB" $mib -}}
{{- end -}}

{{/* fanout.kedaSASL: KEDA's name for FANOUT_SASL_MECHANISM. */}}
{{- define "fanout.kedaSASL" -}}
{{- get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") .Values.kafka.sasl.mechanism -}}
{{- end -}}

{{/* fanout.kafkaAuth: whether KEDA needs a TriggerAuthentication. */}}
{{- define "fanout.kafkaAuth" -}}
{{- if or .Values.kafka.sasl.mechanism .Values.kafka.tls.enabled -}}true{{- end -}}
{{- end -}}

{{/* The variables the chart sets itself; extraEnv may not repeat them. */}}
{{- define "fanout.ownedEnv" -}}
FANOUT_INSTANCE_ID FANOUT_BROKERS FANOUT_GROUP FANOUT_START_OFFSET FANOUT_CONFIG FANOUT_HTTP_ADDR FANOUT_LOG_LEVEL FANOUT_SHUTDOWN_TIMEOUT FANOUT_SESSION_TIMEOUT FANOUT_SASL_MECHANISM FANOUT_SASL_USERNAME FANOUT_SASL_PASSWORD FANOUT_TLS_ENABLED FANOUT_TLS_CA_FILE FANOUT_TLS_CERT_FILE FANOUT_TLS_KEY_FILE GOMEMLIMIT
{{- end -}}
