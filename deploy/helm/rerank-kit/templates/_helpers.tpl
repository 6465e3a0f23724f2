{{/* The chart's names, labels and the values derived once for every template. */}}

{{- define "rerank-kit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name when it already contains the chart's name (release "rerank-kit" -> "rerank-kit"). */}}
{{- define "rerank-kit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "rerank-kit.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "rerank-kit.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "rerank-kit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rerank-kit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rerank-kit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "rerank-kit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rerank-kit.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The model's folder under /models: model.folder, or the hub id's last part. */}}
{{- define "rerank-kit.modelFolder" -}}
{{- default (last (splitList "/" .Values.model.id)) .Values.model.folder }}
{{- end }}

{{/* models.yaml for RERANK_CONFIG: the values' models, each hub id replaced by its folder under /models, where
`rerank-kit download <id> --to /models` puts it (the id's last part). Names route requests and folders hold one
model each, so a repeated name, or two ids sharing a last part, fail the render. */}}
{{- define "rerank-kit.modelsFile" -}}
{{- $names := dict }}
{{- $folders := dict -}}
models:
{{- range .Values.models }}
{{- $folder := last (splitList "/" .path) }}
{{- if hasKey $names .name }}
{{- fail (printf "models: the name %s appears twice; each model needs its own name (clients send it as `model`)" .name) }}
{{- end }}
{{- if and (hasKey $folders $folder) (ne (get $folders $folder) .path) }}
{{- fail (printf "models: %s and %s would both download to /models/%s; serve one of them" (get $folders $folder) .path $folder) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- $_ := set $folders $folder .path }}
  - name: {{ .name | quote }}
    path: {{ printf "/models/%s" $folder | quote }}  # {{ .path }}
    {{- range $setting, $value := omit . "name" "path" }}
    {{ $setting }}: {{ $value | toJson }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "rerank-kit.apiKeySecret" -}}
{{- default (printf "%s-api-key" (include "rerank-kit.fullname" .)) .Values.apiKey.existingSecret }}
{{- end }}

{{- define "rerank-kit.modelClaim" -}}
{{- default (printf "%s-models" (include "rerank-kit.fullname" .)) .Values.model.persistence.existingClaim }}
{{- end }}

{{/* The in-cluster base URL Dify and RAGFlow paste. */}}
{{- define "rerank-kit.url" -}}
{{- printf "http://%s.%s.svc.cluster.local:%v" (include "rerank-kit.fullname" .) .Release.Namespace .Values.service.port }}
{{- end }}
