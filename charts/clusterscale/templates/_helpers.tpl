{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "clusterscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "clusterscale.fullname" -}}
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

{{/* Labels that select the operator pods; never change them on upgrade. */}}
{{- define "clusterscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clusterscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "clusterscale.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "clusterscale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: clusterscale
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "clusterscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clusterscale.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "clusterscale.leaseName" -}}
{{- default (printf "%s-leader" (include "clusterscale.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/* repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "clusterscale.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The RBAC rules the operator needs in each namespace it watches, every one
used by the code (src/controller):
*/}}
{{- define "clusterscale.watchRules" -}}
# ScaledClusters: the reflector lists and watches them, and the startup CRD
# check lists their metadata. get is for `kubectl`-style reads by name.
- apiGroups: ["clusterscale.io"]
  resources: ["scaledclusters"]
  verbs: ["get", "list", "watch"]
# Status only: conditions, observed counts and the write-ahead operation
# record go through server-side apply on /status (patch); get reads the
# status of an object that does not match the schema. The operator never
# writes a spec.
- apiGroups: ["clusterscale.io"]
  resources: ["scaledclusters/status"]
  verbs: ["get", "patch"]
{{- if eq .Values.rbac.secrets "clusterWide" }}
# Credentials, with rbac.secrets=clusterWide only: the Secrets named by
# spec.*.credentialsSecretRef and by CloudAccounts' secretRef, read when a
# ScaledCluster is reconciled and watched (metadata) so that a rotation
# reconciles the clusters that use it. With rbac.secrets=namespaced the same
# rule is in a Role of the release namespace instead (templates/rbac.yaml).
{{ include "clusterscale.secretsRules" . }}
{{- end }}
# Events for every operation and refusal (events.k8s.io/v1; the recorder
# patches a repeated Event instead of creating a new one).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
Read access to Secrets: in each watched namespace with rbac.secrets=clusterWide
(in clusterscale.watchRules), else in the release namespace only.
*/}}
{{- define "clusterscale.secretsRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
The rules on CloudAccounts. They are cluster-scoped, so these are a
ClusterRole whatever watchNamespaces says.
*/}}
{{- define "clusterscale.accountRules" -}}
# CloudAccounts: read to resolve the spec.*.accountRef of ScaledClusters, and
# listed and watched so that a change to an account reconciles the clusters
# that name it. get is for reads by name.
- apiGroups: ["clusterscale.io"]
  resources: ["cloudaccounts"]
  verbs: ["get", "list", "watch"]
# Status only: the Ready condition, the source, the identity, the users and
# the keys' expiry are patched on /status; get reads the status of an object
# that does not match the schema. The operator never writes a spec, and never
# a key into the status.
- apiGroups: ["clusterscale.io"]
  resources: ["cloudaccounts/status"]
  verbs: ["get", "patch"]
{{- end }}
